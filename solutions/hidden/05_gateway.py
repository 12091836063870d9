# Hidden checks for exercise 05 (see solutions/hidden/01_caching.py).

# GRADED CHECK: limiters of two clients are independent
r.delete(limiter_key("hidden-a"), limiter_key("hidden-b"))
a = [check.solved(allow_request, r, "hidden-a", 2, 5.0) for _ in range(3)]
b = [allow_request(r, "hidden-b", 2, 5.0) for _ in range(3)]
check.equal((a, b), ([True, True, False], [True, True, False]), what="3 requests each from two clients, limit 2")

# GRADED CHECK: least outstanding with a single instance picks it
check.equal(check.solved(pick_least_outstanding, [{"id": "only", "outstanding": 7}])["id"], "only",
            what="the pick from a list of one")
