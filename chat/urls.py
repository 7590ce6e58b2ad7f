from django.urls import path

from chat import api, pages

app_name = "chat"

urlpatterns = [
    # Patron HTTP API (PROTOCOL.md)
    path("api/v1/libraries/", api.library_list, name="api-library-list"),
    path(
        "api/v1/libraries/<slug:slug>/status",
        api.library_status,
        name="api-library-status",
    ),
    path(
        "api/v1/libraries/<slug:slug>/conversations",
        api.start_conversation,
        name="api-start-conversation",
    ),
    # Pages
    path("ask/<slug:slug>/", pages.ask_page, name="ask"),
    path("widget/<slug:slug>/", pages.widget_panel, name="widget-panel"),
    path("widget.js", pages.widget_script, name="widget-script"),
    path("demo/<slug:slug>/", pages.demo_site, name="demo-site"),
    path("desk/", pages.desk_page, name="desk"),
    path("", pages.home_page, name="home"),
]
