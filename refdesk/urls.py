from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

admin.site.site_header = "refdesk administration"
admin.site.site_title = "refdesk"
admin.site.index_title = "Consortium and library settings"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("tickets.urls")),
    path("", include("faq.urls")),
    path("", include("libraries.urls")),
    path("", include("chat.urls")),
]
