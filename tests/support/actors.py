"""Acting identities for tests: the domain refuses an action without one."""

from streamlit.testing.v1 import AppTest

from billing.accounts.access import Actor, Role


def operator(name: str = "operator@example.com") -> Actor:
    return Actor(name, Role.OPERATOR)


def viewer(name: str = "viewer@example.com") -> Actor:
    return Actor(name, Role.VIEWER)


def admin(name: str = "admin@example.com") -> Actor:
    return Actor(name, Role.ADMIN)


OPERATOR = operator()
VIEWER = viewer()
ADMIN = admin()


def signed_in_page(path: object, actor: Actor = OPERATOR) -> AppTest:
    """A page as the dashboard runs it after app.py's sign-in check let `actor` through."""
    at = AppTest.from_file(str(path), default_timeout=60)
    at.session_state["actor"] = actor
    return at
