"""Who this browser session is: its workspace, whether it holds the presenter secret, the runs shared with it.

Hosted mode names a workspace by a private link, `?ws=KEY` (engine.runs.workspace): the key stays in
the address bar, so a bookmark or a reload returns to the same workspace, on any device, with no
cookie (Streamlit cannot set one from the server, and a cookie would tie the workspace to one
browser). The share links the app makes never hold the key. A visitor signed in through `st.login`
(OIDC, when the host configured it) gets the workspace of their identity instead, on every device.
"""

from __future__ import annotations

import streamlit as st

from engine.runs import workspace as ws
from engine.runs.workspace import AccessError, Actor
from ui.resources import job_manager


def hosted() -> bool:
    return ws.hosted()


def _signed_in_identity() -> str | None:
    """The identity provider's stable id of a signed-in visitor (st.login), or None."""
    try:
        if not st.user.is_logged_in:
            return None
        return str(st.user.get("sub") or st.user.get("email") or "") or None
    except Exception:  # auth not configured on this server (no [auth] in secrets.toml): nobody is signed in
        return None


def _sign_in_configured() -> bool:
    """Whether the host configured st.login (an [auth] section in .streamlit/secrets.toml)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml
        return False


def _key() -> str:
    """This session's workspace key: the one it has, the link's (`?ws=`), else a new one (said once)."""
    key = st.session_state.get("ws_key")
    if key is None:
        linked = st.query_params.get("ws")
        if linked is not None:
            try:
                ws.workspace_of_key(linked)
                key = linked
            except AccessError:
                st.session_state["ws_refused"] = True
        if key is None:
            key = ws.new_key()
            st.session_state["ws_new"] = True
        st.session_state["ws_key"] = key
    if st.query_params.get("ws") != key:
        st.query_params["ws"] = key  # the private link: the address bar is the bookmark
    return key


def actor() -> Actor:
    """Who acts in this session: in local mode the one local person; hosted, this session's workspace (and the
    presenter's rights once the secret was given in the sidebar)."""
    if not ws.hosted():
        return Actor.local()
    identity = _signed_in_identity()
    workspace = ws.workspace_of_user(identity) if identity else ws.workspace_of_key(_key())
    if identity:
        st.query_params.pop("ws", None)
    ws.touch(job_manager().runs_dir, workspace)
    return Actor(workspace, presenter=bool(st.session_state.get("presenter")))


def shared_runs() -> set[str]:
    """Runs this session opened through their share links (`?run=ID&share=TOKEN`): it may look at them.

    A token that is not the run's is dropped from the URL; the sidebar says so unless the run is the visitor's own
    (a share link of theirs, or a picker moved on to another run while the token stayed in the address)."""
    shared = st.session_state.setdefault("shared_runs", set())
    run_id, token = st.query_params.get("run"), st.query_params.get("share")
    if not (run_id and token) or run_id in shared:
        return shared
    jm = job_manager()
    if ws.share_valid(jm.runs_dir, run_id, token):
        shared.add(run_id)
        return shared
    st.query_params.pop("share", None)
    if run_id not in {r.id for r in jm.runs(actor(), shared)}:
        st.session_state["share_refused"] = run_id
    return shared


def share_link(run_id: str, param: str = "run") -> str:
    """The read-only link to this view of a run: this page's address and its view state (the URL's values),
    the run and its share token, and never the workspace key."""
    from urllib.parse import urlencode

    values = {k: v for k, v in st.query_params.to_dict().items() if k not in ("ws", "share", "run", param)}
    values.update({"run": run_id, "share": ws.share_token(job_manager().runs_dir, run_id)})
    base = (st.context.url or "").split("?", 1)[0]
    return f"{base}?{urlencode(values)}"


def presenter_secret() -> str:
    """The presenter secret: st.secrets["presenter_secret"], else LATENT_LAB_PRESENTER_SECRET; "" when neither."""
    try:
        value = st.secrets.get("presenter_secret")
    except Exception:  # no secrets.toml
        value = None
    return str(value) if value else ws.presenter_secret()


def workspace_panel() -> None:
    """The sidebar's workspace section (hosted mode): the private link, sign-in, the presenter's unlock."""
    if not ws.hosted():
        return
    me = actor()
    with st.sidebar.expander("Your workspace", icon=":material/badge:", expanded=bool(st.session_state.get("ws_new"))):
        if st.session_state.pop("ws_refused", False):
            st.warning("The link's workspace key is not valid, so this is a new workspace.")
        if _signed_in_identity():
            st.caption("Signed in: your workspace follows you to every device.")
            if st.button("Sign out", key="ws_logout"):
                st.logout()
        else:
            st.caption("This page's address is your private link: bookmark it to come back to your runs. "
                       "Do not share it; share a run with its Share button instead (read-only).")
            st.session_state.pop("ws_new", None)
            if _sign_in_configured() and st.button("Sign in", key="ws_login", icon=":material/login:",
                                                   help="with the identity provider this server trusts: your "
                                                        "workspace then follows your account"):
                st.login()
        st.caption(f"Workspace {me.workspace[:8]}")
        expected = presenter_secret()
        if expected and not me.presenter:
            given = st.text_input("Presenter secret", type="password", key="presenter_given",
                                  help="Unlocks moderation: every workspace's runs, cancel or delete any, pin runs "
                                       "to the gallery.")
            if given:
                if ws.is_presenter_secret(given, expected):
                    st.session_state["presenter"] = True
                    st.rerun()
                st.error("That is not the presenter secret.")
        elif me.presenter:
            st.success("Presenter: you see every workspace and may moderate any run.", icon=":material/shield:")
            if st.button("Leave presenter mode", key="presenter_leave"):
                st.session_state["presenter"] = False
                st.session_state.pop("presenter_given", None)
                st.rerun()
