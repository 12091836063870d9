"""One record, one spelling: an id is valid only in the form ``make_id`` writes."""

import pytest

from services.core import ids


@pytest.mark.parametrize("number", [0, 1, 512, 99_999, 100_000, 999_999, 1_000_000, 123_456_789, 999_999_999_999])
def test_what_make_id_writes_is_valid_and_reads_back(number):
    for kind in ids.ID_PREFIX:
        made = ids.make_id(kind, number)
        assert ids.is_valid(kind, made) and ids.id_number(made) == number


@pytest.mark.parametrize("spelling", ["POL-0000512", "POL-000000000512", "POL-0123456", "pol-000512", "Pol-000512",
                                      "POL-00051٢", "POL-０００５１２", "POL-+00512", "POL-000_512", " POL-000512",
                                      "POL-000512 ", "POL-000512\n", "POL--00512", "POL-512", "POL-0000000000512",
                                      "POL-1000000000000"])
def test_every_other_spelling_of_a_number_is_invalid(spelling):
    assert not ids.is_valid("policy", spelling)
