"""URLs of the status page, its live fragment and its actions, the runs and the logs."""

from django.urls import path

from . import sheet_views, views
from .models import DataRouter, ECCServer

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
    path("ecc-servers/<str:pk>/exclude/", views.ExcludeView.as_view(model=ECCServer),
         name="eccserver_exclude"),
    path("ecc-servers/<str:pk>/include/", views.IncludeView.as_view(model=ECCServer),
         name="eccserver_include"),
    path("ecc-servers/<str:pk>/abort/", views.AbortView.as_view(), name="eccserver_abort"),
    path("data-routers/<str:pk>/exclude/", views.ExcludeView.as_view(model=DataRouter),
         name="datarouter_exclude"),
    path("data-routers/<str:pk>/include/", views.IncludeView.as_view(model=DataRouter),
         name="datarouter_include"),
    path("unattributed/<str:pk>/decide/", views.UnattributedDecideView.as_view(),
         name="unattributed_decide"),
    path("events/<str:pk>/acknowledge/", views.EventAcknowledgeView.as_view(),
         name="event_acknowledge"),
    path("runs/", sheet_views.RunSheetView.as_view(), name="run_list"),
    path("runs/charts/", sheet_views.ChartView.as_view(), name="charts"),
    path("runs/chart-data", sheet_views.ChartDataView.as_view(), name="chart_data"),
    path("runs/<str:pk>/sheet/", sheet_views.RunRowView.as_view(), name="run_sheet_row"),
    path("runs/<str:pk>/sheet/edit/", sheet_views.RunEditView.as_view(),
         name="run_sheet_edit"),
    path("observables/", sheet_views.ObservableListView.as_view(), name="observables"),
    path("observables/order/", sheet_views.ObservableOrderView.as_view(),
         name="observable_order"),
    path("observables/<str:pk>/edit/", sheet_views.ObservableEditView.as_view(),
         name="observable_edit"),
    path("observables/<str:pk>/delete/", sheet_views.ObservableDeleteView.as_view(),
         name="observable_delete"),
    path("runs/<str:pk>/", views.RunDetailView.as_view(), name="run_detail"),
    path("run-configs/<str:pk>/files/<str:index>/", views.RunConfigFileView.as_view(),
         name="run_config_file"),
    path("config-diff/", views.ConfigDiffView.as_view(), name="config_diff"),
    path("ecc-servers/<str:pk>/log/", views.LogPageView.as_view(model=ECCServer),
         name="eccserver_log"),
    path("ecc-servers/<str:pk>/log/request/", views.LogRequestView.as_view(model=ECCServer),
         name="eccserver_log_request"),
    path("data-routers/<str:pk>/log/", views.LogPageView.as_view(model=DataRouter),
         name="datarouter_log"),
    path("data-routers/<str:pk>/log/request/", views.LogRequestView.as_view(model=DataRouter),
         name="datarouter_log_request"),
    path("commands/<str:pk>/result/", views.CommandResultView.as_view(), name="command_result"),
]
