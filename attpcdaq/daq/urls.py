"""URLs of the status page, its live fragment and its actions."""

from django.urls import path

from . import views

app_name = "daq"
urlpatterns = [
    path("", views.StatusView.as_view(), name="status"),
    path("status/fragment/", views.StatusFragmentView.as_view(), name="status_fragment"),
    path("transition/", views.SystemTransitionView.as_view(), name="system_transition"),
    # <str:pk>: the views answer a clear 404 for an id that is not a number.
    path("ecc-servers/<str:pk>/transition/", views.ECCServerTransitionView.as_view(),
         name="eccserver_transition"),
    path("ecc-servers/<str:pk>/config/", views.ECCServerSelectConfigView.as_view(),
         name="eccserver_select_config"),
    path("ecc-servers/<str:pk>/configs/refresh/", views.ECCServerRefreshConfigsView.as_view(),
         name="eccserver_refresh_configs"),
    path("events/<str:pk>/acknowledge/", views.EventAcknowledgeView.as_view(),
         name="event_acknowledge"),
]
