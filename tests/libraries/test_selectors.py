"""Reads about libraries: which service areas cover a patron's declared place."""

import pytest

from libraries.models import ServiceArea, ServiceAreaKind
from libraries.selectors import area_libraries


@pytest.fixture
def areas(springfield, shelbyville):
    ServiceArea.objects.create(
        library=springfield, kind=ServiceAreaKind.POSTAL_CODE, value="SW1A1AA"
    )
    ServiceArea.objects.create(
        library=shelbyville, kind=ServiceAreaKind.PLACE, value="North Haverbrook"
    )
    return {"springfield": springfield.id, "shelbyville": shelbyville.id}


@pytest.mark.parametrize(
    ("home_library", "postal_code", "expected"),
    [
        pytest.param("", "", set(), id="nothing-declared"),
        pytest.param("  ", " \t", set(), id="only-spaces"),
        pytest.param("", "sw1a 1aa", {"springfield"}, id="postal-code-normalised"),
        pytest.param("north  haverbrook", "", {"shelbyville"}, id="place-any-case"),
        pytest.param(
            "North Haverbrook", "SW1A 1AA", {"springfield", "shelbyville"}, id="both"
        ),
        pytest.param("Capital City", "99999", set(), id="unknown"),
    ],
)
def test_area_libraries(areas, home_library, postal_code, expected):
    found = area_libraries(home_library=home_library, postal_code=postal_code)

    assert found == {areas[slug] for slug in expected}


def test_nothing_declared_costs_no_query(areas, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert area_libraries(home_library=" ", postal_code="") == set()
