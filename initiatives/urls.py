from __future__ import annotations

from django.urls import path

from initiatives import views

urlpatterns = [
    path("", views.home, name="home"),
    path("board/", views.board, name="board"),
    path("board/column/", views.board_column, name="board-column"),
    path("archive/", views.archive, name="archive"),
    path("initiatives/new/", views.initiative_create, name="initiative-create"),
    path("initiatives/<str:key>/", views.initiative_detail, name="initiative-detail"),
    path("initiatives/<str:key>/edit/", views.initiative_edit, name="initiative-edit"),
    path("initiatives/<str:key>/team/", views.member_add, name="member-add"),
    path(
        "initiatives/<str:key>/team/<int:membership_id>/remove/",
        views.member_remove,
        name="member-remove",
    ),
    path("initiatives/<str:key>/handover/", views.hand_over, name="hand-over"),
    path("initiatives/<str:key>/iterations/", views.iteration_add, name="iteration-add"),
    path(
        "initiatives/<str:key>/iterations/<int:number>/feedback/",
        views.iteration_feedback,
        name="iteration-feedback",
    ),
]
