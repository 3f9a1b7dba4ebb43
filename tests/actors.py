"""Test actors that behave as Supabase's own services do against the database.

- `Postgrest` opens one transaction per request as PostgREST does: connected as
  `authenticator`, search_path and JWT claims set locally, then SET LOCAL ROLE to
  the claim's role with that role's statement_timeout in force.
- `SupabaseAuth` connects as `supabase_auth_admin` and writes what Supabase Auth
  (GoTrue) writes for sign-up, phone confirmation, email change and deletion; the fast
  tests use it, and tests/test_real_auth.py holds it equal to the real server.
- `App` is a person in the mobile app: Supabase's auth client against the real server.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import psycopg
from psycopg.rows import dict_row
from supabase_auth import SyncGoTrueAdminAPI, SyncGoTrueClient

from glue.devdb.mail import MailCatcher

NIL_UUID = "00000000-0000-0000-0000-000000000000"
# Shaped as the real server's bcrypt hash and token hashes; never checked by anything here.
PASSWORD_HASH = "$2a$10$not.a.real.hash.but.shaped.like.one............."


def token_hash() -> str:
    return secrets.token_hex(28)


ROLE_TIMEOUTS = {"anon": "3s", "authenticated": "8s"}


@dataclass(frozen=True)
class Database:
    """Where one test database lives, and how each Supabase role reaches it."""

    host: str
    port: int
    dbname: str
    password: str = "postgres"

    def url(self, user: str = "postgres") -> str:
        return f"postgresql://{user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def connect(self, user: str = "postgres", autocommit: bool = True) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.url(user), autocommit=autocommit, row_factory=dict_row)


@dataclass(frozen=True)
class TokenClaims:
    """The claims of an access token the real Auth server issued, its signature verified."""

    claims: dict[str, Any]

    @classmethod
    def verified(cls, access_token: str, secret: str) -> TokenClaims:
        return cls(jwt.decode(access_token, secret, algorithms=["HS256"], audience="authenticated"))

    @property
    def role(self) -> str:
        return str(self.claims["role"])

    def as_json(self) -> str:
        return json.dumps(self.claims)


@dataclass(frozen=True)
class Claims:
    role: str
    sub: str | None = None
    email: str | None = None
    phone: str | None = None

    def as_json(self) -> str:
        claims: dict[str, Any] = {"role": self.role, "aud": self.role}
        if self.sub:
            claims.update(sub=self.sub, email=self.email or "", phone=self.phone or "")
        return json.dumps(claims)


class Postgrest:
    """Reproduces what PostgREST does in the database for one API request."""

    def __init__(self, db: Database) -> None:
        self._conn = db.connect("authenticator", autocommit=False)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def request(self, claims: Claims | TokenClaims) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        conn = self._conn
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "select set_config('search_path', 'public, extensions', true),"
                    " set_config('request.jwt.claims', %s, true),"
                    " set_config('request.method', 'POST', true)",
                    (claims.as_json(),),
                )
                cur.execute(f"set local role {claims.role}")
                if claims.role in ROLE_TIMEOUTS:
                    cur.execute(f"set local statement_timeout = '{ROLE_TIMEOUTS[claims.role]}'")
                yield cur
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def as_anon(self) -> Any:
        return self.request(Claims("anon"))

    def as_service(self) -> Any:
        return self.request(Claims("service_role"))

    def as_user(self, user_id: str | uuid.UUID, email: str | None = None, phone: str | None = None) -> Any:
        return self.request(Claims("authenticated", str(user_id), email, phone))

    def with_token(self, access_token: str, secret: str) -> Any:
        """A request carrying a real access token: its signature checked, its claims set as they are."""
        return self.request(TokenClaims.verified(access_token, secret))


class SupabaseAuth:
    """Writes to auth.* as Supabase Auth does, statement by statement, connected as
    supabase_auth_admin. Each method issues the UPDATEs the real server issues for that flow,
    in its order (seen in the server's statement log); tests/test_auth_differential.py holds
    the rows each flow leaves equal to the real server's."""

    def __init__(self, db: Database) -> None:
        self._conn = db.connect("supabase_auth_admin", autocommit=True)

    def close(self) -> None:
        self._conn.close()

    def _set(self, user_id: uuid.UUID, assignments: str, *values: Any) -> None:
        self._conn.execute(
            f"update users set {assignments}, updated_at = now() where id = %s".encode(), (*values, user_id)
        )

    def _insert(
        self,
        user_id: uuid.UUID,
        provider: str,
        email: str | None,
        phone: str | None,
        metadata: dict[str, Any],
    ) -> None:
        """The sign-up INSERT: role '' and empty tokens; then role -> authenticated."""
        self._conn.execute(
            """
            insert into users (instance_id, id, aud, role, email, encrypted_password, phone,
              confirmation_token, recovery_token, email_change_token_new, email_change_token_current,
              email_change, email_change_confirm_status, phone_change, phone_change_token,
              reauthentication_token, raw_app_meta_data, raw_user_meta_data, is_super_admin,
              created_at, updated_at, is_anonymous, is_sso_user)
            values (%s, %s, 'authenticated', '', %s, %s, %s, '', '', '', '', '', 0, '', '', '',
              %s, %s, null, now(), now(), false, false)
            """,
            (
                NIL_UUID,
                user_id,
                email,
                PASSWORD_HASH,
                phone,
                json.dumps({"provider": provider, "providers": [provider]}),
                json.dumps(metadata),
            ),
        )
        self._set(user_id, "role = 'authenticated'")

    def _add_identity(self, user_id: uuid.UUID, provider: str, data: dict[str, Any]) -> None:
        self._conn.execute(
            """
            insert into identities (provider_id, user_id, identity_data, provider,
              last_sign_in_at, created_at, updated_at)
            values (%s, %s, %s, %s, now(), now(), now())
            """,
            (str(user_id), user_id, json.dumps(data), provider),
        )

    def _set_identity(self, user_id: uuid.UUID, provider: str, data: dict[str, Any]) -> None:
        self._conn.execute(
            "update identities set identity_data = %s, updated_at = now() where user_id = %s and provider = %s",
            (json.dumps(data), user_id, provider),
        )

    def sign_up(self, email: str, metadata: dict[str, Any] | None = None, confirm: bool = True) -> uuid.UUID:
        """signUp({ email, password }) with confirmations on; `confirm` follows the mail's link."""
        user_id = uuid.uuid4()
        email = email.lower()
        metadata = metadata or {}
        identity = {
            "sub": str(user_id),
            "email": email,
            **metadata,
            "email_verified": False,
            "phone_verified": False,
        }
        with self._conn.transaction():
            self._insert(user_id, "email", email, None, metadata)
            self._add_identity(user_id, "email", identity)
            self._set(user_id, "raw_user_meta_data = %s", json.dumps(identity))
        self._set(user_id, "confirmation_sent_at = now(), confirmation_token = %s", token_hash())
        if confirm:
            self.confirm_email(user_id)
        return user_id

    def confirm_email(self, user_id: uuid.UUID) -> None:
        """verifyOtp({ type: 'signup' }) or the mail's link: confirmed, metadata marked, signed in."""
        with self._conn.transaction():
            self._set(user_id, "confirmation_token = '', email_confirmed_at = now()")
            self._set(
                user_id,
                "raw_user_meta_data = raw_user_meta_data || '{\"email_verified\": true}'::jsonb",
            )
            self._conn.execute(
                "update identities set identity_data = identity_data || '{\"email_verified\": true}'::jsonb"
                " where user_id = %s and provider = 'email'",
                (user_id,),
            )
            self._set(user_id, "last_sign_in_at = now()")

    def sign_up_with_phone(self, phone_digits: str) -> uuid.UUID:
        """signInWithOtp({ phone }) of a new number (the user inserted, unconfirmed), then
        verifyOtp({ type: 'sms' })."""
        user_id = self.request_phone_sign_in(phone_digits)
        self.verify_phone_sign_in(user_id)
        return user_id

    def request_phone_sign_in(self, phone_digits: str) -> uuid.UUID:
        """signInWithOtp({ phone }) for a number no account holds: an unconfirmed user with the phone."""
        user_id = uuid.uuid4()
        identity = {"sub": str(user_id), "email_verified": False, "phone_verified": False}
        with self._conn.transaction():
            self._insert(user_id, "phone", None, phone_digits, {})
            self._add_identity(user_id, "phone", identity)
            self._set(user_id, "raw_user_meta_data = %s", json.dumps(identity))
        self._set(user_id, "confirmation_sent_at = now(), confirmation_token = %s", token_hash())
        return user_id

    def verify_phone_sign_in(self, user_id: uuid.UUID) -> None:
        """verifyOtp({ type: 'sms' }): phone_confirmed_at set in its own UPDATE, then signed in."""
        with self._conn.transaction():
            self._set(user_id, "confirmation_token = '', phone_confirmed_at = now()")
            self._set(user_id, "last_sign_in_at = now()")

    def admin_create_user(self, phone_digits: str, email: str | None = None) -> uuid.UUID:
        """auth.admin.createUser({ phone, phone_confirm: true }): inserted unconfirmed, then
        phone_confirmed_at in a later UPDATE of its own."""
        user_id = uuid.uuid4()
        identity = {
            "sub": str(user_id),
            "phone": phone_digits,
            "email_verified": False,
            "phone_verified": False,
        }
        with self._conn.transaction():
            self._insert(user_id, "phone", email, phone_digits, {})
            self._add_identity(user_id, "phone", identity)
            self._set(user_id, "role = 'authenticated'")
            self._set(user_id, "confirmation_token = '', phone_confirmed_at = now()")
        return user_id

    def admin_create_user_with_email(self, email: str) -> uuid.UUID:
        """auth.admin.createUser({ email, email_confirm: true })."""
        user_id = uuid.uuid4()
        email = email.lower()
        identity = {"sub": str(user_id), "email": email, "email_verified": False, "phone_verified": False}
        with self._conn.transaction():
            self._insert(user_id, "email", email, None, {})
            self._add_identity(user_id, "email", identity)
            self._set(user_id, "confirmation_token = '', email_confirmed_at = now()")
            self._set(user_id, "raw_user_meta_data = %s", json.dumps({"email_verified": True}))
        return user_id

    def admin_update_phone(self, user_id: uuid.UUID, phone_digits: str, phone_confirm: bool = False) -> None:
        """auth.admin.updateUserById(id, { phone, phone_confirm }): with phone_confirm the confirmation
        is stamped first, on the row still holding the old number; the phone comes in its own UPDATE."""
        with self._conn.transaction():
            if phone_confirm:
                self._set(user_id, "confirmation_token = '', phone_confirmed_at = now()")
            self._conn.execute(
                """
                insert into identities (provider_id, user_id, identity_data, provider,
                  last_sign_in_at, created_at, updated_at)
                values (%s, %s, %s, 'phone', now(), now(), now())
                on conflict (provider_id, provider) do update set identity_data =
                  identities.identity_data || jsonb_build_object('phone', %s::text, 'phone_verified',
                    %s or (identities.identity_data ->> 'phone_verified')::boolean)
                """,
                (
                    str(user_id),
                    user_id,
                    json.dumps(
                        {
                            "sub": str(user_id),
                            "phone": phone_digits,
                            "email_verified": False,
                            "phone_verified": True,
                        }
                    ),
                    phone_digits,
                    phone_confirm,
                ),
            )
            self._set(user_id, "phone = %s", phone_digits)

    def request_phone_change(self, user_id: uuid.UUID, phone_digits: str) -> None:
        """updateUser({ phone }) with confirmations on: the code is sent, nothing is confirmed."""
        self._set(
            user_id,
            "phone_change = %s, phone_change_sent_at = now(), phone_change_token = %s",
            phone_digits,
            token_hash(),
        )

    def confirm_phone(self, user_id: uuid.UUID, phone_digits: str) -> None:
        """verifyOtp({ type: 'phone_change' }): the phone identity, then one UPDATE of the user."""
        identity = {
            "sub": str(user_id),
            "phone": phone_digits,
            "email_verified": False,
            "phone_verified": True,
        }
        with self._conn.transaction():
            self._conn.execute(
                """
                insert into identities (provider_id, user_id, identity_data, provider,
                  last_sign_in_at, created_at, updated_at)
                values (%s, %s, %s, 'phone', now(), now(), now())
                on conflict (provider_id, provider) do update set identity_data = excluded.identity_data
                """,
                (str(user_id), user_id, json.dumps(identity)),
            )
            self._set(
                user_id,
                "phone = %s, phone_change = '', phone_change_token = '', phone_confirmed_at = now()",
                phone_digits,
            )
            self._set(
                user_id,
                "raw_app_meta_data = jsonb_set(raw_app_meta_data, '{providers}',"
                " (raw_app_meta_data -> 'providers') || '[\"phone\"]'::jsonb)",
            )
            self._set(user_id, "last_sign_in_at = now()")

    def sign_in_with_phone_otp(self, user_id: uuid.UUID) -> None:
        """signInWithOtp({ phone }) + verifyOtp({ type: 'sms' }) of a user who has the phone already: GoTrue's
        ConfirmPhone sets phone_confirmed_at to now, proving the number again (updateUser with the same phone
        sends nothing)."""
        self.verify_phone_sign_in(user_id)

    def change_email(self, user_id: uuid.UUID, new_email: str) -> None:
        """updateUser({ email }) confirmed on both addresses (secure email change)."""
        new_email = new_email.lower()
        self._set(
            user_id,
            "email_change = %s, email_change_confirm_status = 0, email_change_sent_at = now(),"
            " email_change_token_current = %s, email_change_token_new = %s",
            new_email,
            token_hash(),
            token_hash(),
        )
        self._set(user_id, "email_change_confirm_status = 1, email_change_token_current = ''")
        with self._conn.transaction():
            self._conn.execute(
                "update identities set identity_data = jsonb_set(identity_data, '{email}', to_jsonb(%s::text))"
                " where user_id = %s and provider = 'email'",
                (new_email, user_id),
            )
            self._set(
                user_id,
                "email = %s, email_change = '', email_change_confirm_status = 0,"
                " email_change_token_current = '', email_change_token_new = ''",
                new_email,
            )
            self._set(user_id, "last_sign_in_at = now()")

    def delete_user(self, user_id: uuid.UUID) -> None:
        self._conn.execute("delete from users where id = %s", (user_id,))

    def user(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        return self._conn.execute("select * from users where id = %s", (user_id,)).fetchone()


class App:
    """A person using the mobile app: Supabase's own Python auth client against the real Auth
    server, and RPCs sent as PostgREST sends them, with the access token that server issued."""

    def __init__(self, auth_url: str, anon_key: str, secret: str, api: Postgrest, mail: MailCatcher) -> None:
        self._http = httpx.Client(timeout=30)
        self.client = SyncGoTrueClient(
            url=auth_url,
            headers={"apikey": anon_key},
            auto_refresh_token=False,
            persist_session=True,
            http_client=self._http,
        )
        self._secret = secret
        self._api = api
        self._mail = mail

    def close(self) -> None:
        self._http.close()

    @property
    def access_token(self) -> str:
        session = self.client.get_session()
        assert session is not None, "not signed in"
        return session.access_token

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(str(TokenClaims.verified(self.access_token, self._secret).claims["sub"]))

    def sign_up(self, email: str, password: str, full_name: str | None = None) -> uuid.UUID:
        """Sign up with email and password, then follow the confirmation mail's link."""
        options = {"data": {"full_name": full_name}} if full_name else {}
        response = self.client.sign_up({"email": email, "password": password, "options": options})
        assert response.user is not None and response.session is None  # confirmations are on
        mail = self._mail.wait_for(email)
        assert mail.link_token is not None
        self.client.verify_otp({"token_hash": mail.link_token, "type": "signup"})
        return uuid.UUID(response.user.id)

    def sign_in(self, email: str, password: str) -> None:
        self.client.sign_in_with_password({"email": email, "password": password})

    def add_phone(self, phone_digits: str, code: str) -> None:
        """updateUser({ phone }) then verifyOtp({ type: 'phone_change' }), as the app does."""
        self.client.update_user({"phone": phone_digits})
        self.client.verify_otp({"phone": phone_digits, "token": code, "type": "phone_change"})

    def change_email(self, current: str, new: str) -> None:
        """updateUser({ email }), then the link in each of the two mails (secure email change)."""
        self.client.update_user({"email": new})
        for address in (current, new):
            mail = self._mail.wait_for(address, count=len(self._mail.mails_to(address)) or 1)
            assert mail.link_token is not None
            self.client.verify_otp({"token_hash": mail.link_token, "type": "email_change"})

    def sign_in_with_phone(self, phone_digits: str, code: str) -> None:
        """signInWithOtp({ phone }) then verifyOtp({ type: 'sms' })."""
        self.client.sign_in_with_otp({"phone": phone_digits})
        self.client.verify_otp({"phone": phone_digits, "token": code, "type": "sms"})

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """One API request with this person's access token: an RPC or a select under RLS."""
        with self._api.with_token(self.access_token, self._secret) as cur:
            return cur.execute(statement.encode(), params).fetchall()


def admin_api(auth_url: str, service_role_key: str, http: httpx.Client) -> SyncGoTrueAdminAPI:
    """supabase.auth.admin as a backend holding the service-role key has it."""
    headers = {"apikey": service_role_key, "Authorization": f"Bearer {service_role_key}"}
    return SyncGoTrueAdminAPI(url=auth_url, headers=headers, http_client=http)
