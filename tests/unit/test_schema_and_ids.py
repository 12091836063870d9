"""The key schema and the id rules: small facts other code relies on."""

from services.core import ids, keys
from services.core.settings import Settings


def test_every_key_starts_with_the_lab_prefix():
    built = [keys.cache_entity("policy", "POL-000001"), keys.registry_instance("claims", "c-1"),
             keys.session("abc"), keys.stream("claims"), keys.channel("claims"), keys.warmup("x"),
             keys.cache_list("policies", "CUS-000001"), keys.stats("policy", "p-1")]
    assert all(k.startswith("lab:") for k in built)


def test_entity_keys_carry_a_hash_tag_for_cluster():
    assert keys.cache_entity("policy", "POL-000042") == "lab:cache:policy:{POL-000042}"
    assert keys.cache_list("policies", "CUS-000001").startswith("lab:cache:policies:{CUS-000001}")


def test_ids_are_made_and_validated_by_pattern():
    assert ids.make_id("customer", 1) == "CUS-000001"
    assert ids.id_number("POL-001234") == 1234
    assert ids.is_valid("claim", "CLM-000001")
    for bad in ("CLM-1", "clm-000001", "CLM-000001\n", "CLM-000001/../x", "POL-000001"):
        assert not ids.is_valid("claim", bad)


def test_settings_default_ports_follow_the_original_lab():
    default = {name: field.default for name, field in Settings.model_fields.items()}
    assert [default[f"{s}_port"] for s in ("gateway", "policy", "claims", "customer")] == [3000, 3001, 3002, 3003]
    assert default["redis_port"] != 6379


def test_redis_url_wins_over_the_embedded_server(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:6999/0")
    assert Settings(_env_file=None).redis_url == "redis://example.invalid:6999/0"


def test_ids_too_long_for_sqlite_are_invalid():
    assert ids.is_valid("policy", "POL-999999999999")
    assert not ids.is_valid("policy", "POL-9953072841014938869674150774")
