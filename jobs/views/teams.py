from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs import selectors, services
from jobs.access import (
    Need,
    invitation_for_invitee,
    invitation_for_owner,
    invite_for_user,
    member_of_team,
    membership_for,
)
from jobs.forms import InviteForm, MemberAddForm, RoleForm, TeamForm
from jobs.views.workspace_settings import sections_context


def _team_membership(request, pk: int, need: Need = Need.VIEW):
    membership = membership_for(request.user, pk, need)
    if membership.workspace.is_personal:
        raise Http404("Personal workspaces have no team page.")
    return membership


@login_required
@require_http_methods(["GET", "POST"])
def team_list(request):
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = services.team_create(name=form.cleaned_data["name"], owner=request.user)
        messages.success(request, f"Created the team “{team.name}”. Add members or send them an invite link.")
        return redirect("team_detail", pk=team.pk)
    status = 422 if request.method == "POST" else 200
    context = {
        "form": form,
        "memberships": selectors.team_memberships(user=request.user),
        "invitations": selectors.invitations_for(user=request.user),
    }
    return render(request, "teams/team_list.html", context, status=status)


@login_required
@require_GET
def team_detail(request, pk: int):
    return _render_team(request, _team_membership(request, pk))


def _render_team(request, membership, *, status=200, **forms):
    team = membership.workspace
    members = selectors.team_members(team=team)
    context = {
        "team": team,
        "me": membership,
        "members": members,
        "owner_count": sum(1 for m in members if m.is_owner),
        **sections_context(request, membership),
    }
    if membership.is_owner:
        context |= {
            "add_form": forms.get("add_form") or MemberAddForm(),
            "invite_form": forms.get("invite_form") or InviteForm(),
            "rename_form": forms.get("rename_form") or TeamForm(initial={"name": team.name}),
            "role_form": RoleForm(),
            "invites": selectors.usable_invites(team=team),
            "invitations": selectors.pending_invitations(team=team),
        }
    return render(request, "teams/team_detail.html", context, status=status)


@login_required
@require_POST
def member_add(request, pk: int):
    membership = _team_membership(request, pk, Need.MANAGE)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            invitation = services.member_invite(
                team=membership.workspace,
                username=form.cleaned_data["username"],
                role=form.cleaned_data["role"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error("username", exc)
        else:
            # The same answer whether or not the account exists (see services.member_invite).
            messages.success(
                request,
                f"Invited {invitation.username} as {invitation.get_role_display()}. If an account "
                f"named {invitation.username} exists, they will see the invitation on their Teams "
                "page and join when they accept it.",
            )
            return redirect("team_detail", pk=pk)
    return _render_team(request, membership, add_form=form, status=422)


@login_required
@require_POST
def invitation_revoke(request, pk: int, invitation_pk: int):
    invitation = invitation_for_owner(request.user, pk, invitation_pk)
    services.invitation_revoke(invitation=invitation, actor=request.user)
    messages.success(request, f"Withdrew the invitation of {invitation.username}.")
    return redirect("team_detail", pk=pk)


@login_required
@require_POST
def invitation_accept(request, pk: int):
    invitation = invitation_for_invitee(request.user, pk)
    membership = services.invitation_accept(invitation=invitation, user=request.user)
    messages.success(request, f"You joined {membership.workspace.name} as {membership.get_role_display()}.")
    return redirect("team_detail", pk=membership.workspace_id)


@login_required
@require_POST
def invitation_decline(request, pk: int):
    invitation = invitation_for_invitee(request.user, pk)
    services.invitation_decline(invitation=invitation, user=request.user)
    messages.success(request, f"Declined the invitation to {invitation.workspace.name}.")
    return redirect("team_list")


@login_required
@require_POST
def member_role(request, pk: int, member_pk: int):
    member = member_of_team(request.user, pk, member_pk)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            services.member_change_role(membership=member, role=form.cleaned_data["role"], actor=request.user)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            messages.success(request, f"{member.user.get_username()} is now {member.get_role_display()}.")
    return redirect("team_detail", pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def member_remove(request, pk: int, member_pk: int):
    member = member_of_team(request.user, pk, member_pk)
    return _confirm_leaving(request, member, leaving=member.user_id == request.user.pk)


@login_required
@require_http_methods(["GET", "POST"])
def team_leave(request, pk: int):
    return _confirm_leaving(request, _team_membership(request, pk), leaving=True)


def _confirm_leaving(request, member, *, leaving: bool):
    team = member.workspace
    if request.method == "POST":
        try:
            services.member_remove(membership=member, actor=request.user)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
            return redirect("team_detail", pk=team.pk)
        if leaving:
            messages.success(request, f"You left {team.name}.")
            return redirect("team_list")
        messages.success(request, f"Removed {member.user.get_username()} from {team.name}.")
        return redirect("team_detail", pk=team.pk)
    if leaving:
        title = f"Leave {team.name}?"
        body = "You will no longer see its jobs or use its tokens. An owner can add you back."
        button = "Leave team"
    else:
        title = f"Remove {member.user.get_username()} from {team.name}?"
        body = "They will no longer see the team's jobs or use its tokens. Jobs they tracked stay."
        button = "Remove member"
    return render(
        request,
        "confirm.html",
        {
            "title": title,
            "body": body,
            "button": button,
            "cancel_url": reverse("team_detail", args=[team.pk]),
        },
    )


@login_required
@require_POST
def team_rename(request, pk: int):
    membership = _team_membership(request, pk, Need.MANAGE)
    form = TeamForm(request.POST)
    if form.is_valid():
        services.team_rename(team=membership.workspace, name=form.cleaned_data["name"], actor=request.user)
        messages.success(request, f"Renamed the team to “{membership.workspace.name}”.")
        return redirect("team_detail", pk=pk)
    return _render_team(request, membership, rename_form=form, status=422)


@login_required
@require_http_methods(["GET", "POST"])
def team_delete(request, pk: int):
    team = _team_membership(request, pk, Need.MANAGE).workspace
    if request.method == "POST":
        services.team_delete(team=team)
        messages.success(request, f"Deleted the team “{team.name}”, its tokens and its tracked jobs.")
        return redirect("team_list")
    token_count, job_count = selectors.team_contents(team=team)
    return render(
        request,
        "confirm.html",
        {
            "title": f"Delete the team {team.name}?",
            "body": (
                f"This deletes its {token_count} token(s), stops tracking its "
                f"{job_count} job(s) and removes every member. It cannot be undone."
            ),
            "button": "Delete team",
            "cancel_url": reverse("team_detail", args=[team.pk]),
        },
    )


@login_required
@require_POST
def invite_create(request, pk: int):
    membership = _team_membership(request, pk, Need.MANAGE)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _render_team(request, membership, invite_form=form, status=422)
    invite, secret = services.invite_create(
        team=membership.workspace, role=form.cleaned_data["role"], actor=request.user
    )
    link = request.build_absolute_uri(reverse("invite_accept", args=[secret]))
    # Shown once: only a hash of the secret is stored.
    messages.success(
        request,
        f"Invite link for a new {invite.get_role_display()} (single use, valid until "
        f"{invite.expires_at:%Y-%m-%d %H:%M} UTC; copy it now, it is not shown again): {link}",
    )
    return redirect("team_detail", pk=pk)


@login_required
@require_POST
def invite_revoke(request, pk: int, invite_pk: int):
    services.invite_revoke(invite=invite_for_user(request.user, pk, invite_pk), actor=request.user)
    messages.success(request, "Invite revoked.")
    return redirect("team_detail", pk=pk)


@login_required
@require_GET
def audit_trail(request, pk: int):
    workspace = membership_for(request.user, pk, Need.MANAGE).workspace
    events = selectors.audit_trail(workspace=workspace)
    return render(request, "teams/audit_trail.html", {"workspace": workspace, "events": events})
