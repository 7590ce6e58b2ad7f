from django.urls import path

from libraries import api

app_name = "libraries"

urlpatterns = [
    # Staff local info API (Django session; librarians only)
    path(
        "api/v1/local-info/search", api.search_local_info, name="api-local-info-search"
    ),
    path(
        "api/v1/local-info/<int:section_id>/outdated",
        api.report_outdated,
        name="api-local-info-outdated",
    ),
]
