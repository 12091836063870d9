# Hidden checks for exercise 01: they live with the instructor and run with
#   labkit grade NOTEBOOK --with-hidden solutions/hidden
# Each starts with "# GRADED CHECK:"; they run after the learner's cells, in the same kernel.

# GRADED CHECK: an update of a policy that was never cached works, and the next read sees it
r.delete(policy_key("POL-000007"))
check.solved(update_policy, r, "POL-000007", {"product": "home"})
check.equal(r.exists(policy_key("POL-000007")), 0, what="copies of POL-000007 after updating an uncached policy")
check.equal(get_policy(r, "POL-000007")["product"], "home", what="the product read after the update")

# GRADED CHECK: a hit returns a fresh dict each time (a caller that changes it does not change the cache)
# points: 1
r.delete(policy_key("POL-000008"))
check.solved(get_policy, r, "POL-000008")
first = get_policy(r, "POL-000008")
first["premium_cents"] = -1
check.equal(get_policy(r, "POL-000008")["premium_cents"], SYSTEM_OF_RECORD["POL-000008"]["premium_cents"],
            what="the premium read after a caller changed its copy")
