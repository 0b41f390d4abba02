"""A real OpenID Connect provider for the sign-in tests, and the app's settings to use it.

The provider is oidc-provider-mock (a Flask app built on Authlib's server) on a free
port of its own. Its authorization page asks for a subject; an identity unknown to it is
created on the spot with that subject as its e-mail claim, so a browser signs in as any
address by typing it. The dashboard reaches it through Streamlit's st.login, configured
by the `[auth]` section of a secrets.toml written to a temporary folder and named to
`streamlit run` by STREAMLIT_SECRETS_FILES (the repository's .streamlit/ stays untouched).

What has to agree, learned the hard way (see README, "Signing in with the company's
identity provider"):

- redirect_uri names the host the browser uses. The app is opened at 127.0.0.1, so
  the callback is http://127.0.0.1:PORT/oauth2callback: with "localhost" the browser
  comes back to another site, without the session cookie that holds the login's state,
  and Streamlit silently shows the sign-in screen again ("Missing provider for OAuth
  callback" in its log). The identity cookie also records the redirect_uri's origin and
  is ignored by a page opened at any other.
- The app's port is in redirect_uri, and the client is registered with that exact URI
  before the app starts, as with a real provider: the port is chosen first.
- The provider is on "localhost", the app on 127.0.0.1: two sites, two cookie jars.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import oidc_provider_mock


@dataclass(frozen=True)
class IdentityProvider:
    """A running provider: where it is, and how to register a client with it."""

    url: str

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def register_client(self, redirect_uri: str) -> tuple[str, str]:
        """A new client allowed to come back only to `redirect_uri`: (id, secret)."""
        body = {
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "client_secret_basic",
        }
        reply = _send(f"{self.url}/oauth2/clients", method="POST", body=body)
        return reply["client_id"], reply["client_secret"]


def _send(url: str, *, method: str, body: dict[str, object]) -> dict[str, object]:
    """One JSON request to the provider's API; its JSON answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        content = reply.read()
    return json.loads(content) if content else {}


@contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    """The provider on a free port, in a thread of this process, until the block ends.

    Clients must be registered (as with a real provider), and every request must carry a
    nonce (Streamlit sends one).
    """
    with oidc_provider_mock.run_server_in_thread(
        require_client_registration=True, require_nonce=True
    ) as server:
        yield IdentityProvider(url=f"http://localhost:{server.server_port}")


def oidc_app_env(
    provider: IdentityProvider,
    *,
    app_port: int,
    folder: Path,
    admins: str = "",
    operators: str = "",
    viewers: str = "",
) -> dict[str, str]:
    """Variables that make `streamlit run app.py` on `app_port` sign in through `provider`.

    Writes `folder`/secrets.toml with the `[auth]` section (a client registered for this
    app's callback, a fresh cookie secret) and returns STREAMLIT_SECRETS_FILES naming it,
    AUTH_MODE=oidc and the role lists, to be laid over the app's other variables.
    """
    redirect_uri = f"http://127.0.0.1:{app_port}/oauth2callback"
    client_id, client_secret = provider.register_client(redirect_uri)
    folder.mkdir(parents=True, exist_ok=True)
    secrets_file = folder / "secrets.toml"
    if any(character.isspace() for character in str(secrets_file)):
        # STREAMLIT_SECRETS_FILES is a list that Streamlit splits at spaces.
        raise ValueError(f"the secrets file's path may not contain spaces: {secrets_file}")
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "{redirect_uri}"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        f'client_id = "{client_id}"\n'
        f'client_secret = "{client_secret}"\n'
        f'server_metadata_url = "{provider.metadata_url}"\n',
        encoding="utf-8",
    )
    return {
        "STREAMLIT_SECRETS_FILES": str(secrets_file),
        "AUTH_MODE": "oidc",
        "OIDC_ADMINS": admins,
        "OIDC_OPERATORS": operators,
        "OIDC_VIEWERS": viewers,
    }
