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

import hashlib
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


def _bcrypt_shaped_hash() -> str:
    """A password hash nobody knows the password of, shaped as GoTrue stores one."""
    return "$2a$10$" + secrets.token_urlsafe(40)[:53]


def _token_hash(phone_or_email: str) -> str:
    """crypto.GenerateTokenHash: the SHA-224 of the number (or address) and a fresh code, in hex."""
    return hashlib.sha224((phone_or_email + f"{secrets.randbelow(10**6):06d}").encode()).hexdigest()


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
        password_hash: str = PASSWORD_HASH,
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
                password_hash,
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
        """signInWithOtp({ phone }) for a new number, then verifyOtp({ type: 'sms' }) with the code it sent."""
        user_id = self.request_phone_code(phone_digits)
        self.verify_phone_code(phone_digits)
        return user_id

    def verify_phone_sign_in(self, user_id: uuid.UUID) -> None:
        """verifyOtp({ type: 'sms' }): phone_confirmed_at set in its own UPDATE, then signed in."""
        with self._conn.transaction():
            self._set(user_id, "confirmation_token = '', phone_confirmed_at = now()")
            self._set(user_id, "last_sign_in_at = now()")

    def admin_create_user(self, phone_digits: str, email: str | None = None) -> uuid.UUID:
        """A user row inserted already confirmed (phone, and email when given), as a seed file, an import
        or the SQL editor writes it. GoTrue's own adminUserCreate inserts unconfirmed and confirms in later
        UPDATEs of the same transaction, so only rows written this way reach the insert trigger confirmed."""
        user_id = uuid.uuid4()
        self._conn.execute(
            """
            insert into users (instance_id, id, aud, role, email, email_confirmed_at, phone, phone_confirmed_at,
              confirmation_token, recovery_token, email_change_token_new, email_change,
              raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
            values (%s, %s, 'authenticated', 'authenticated', %s, case when %s::text is not null then now() end,
              %s, now(), '', '', '', '',
              '{"provider": "phone", "providers": ["phone"]}', '{}', now(), now(), false)
            """,
            (NIL_UUID, user_id, email, email, phone_digits),
        )
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

    def request_phone_change(self, user_id: uuid.UUID, phone_digits: str) -> None:
        """updateUser({ phone }) with confirmations on: the code is sent, nothing is confirmed."""
        self._set(
            user_id,
            "phone_change = %s, phone_change_sent_at = now(), phone_change_token = %s",
            phone_digits,
            token_hash(),
        )

    def confirm_phone(self, user_id: uuid.UUID, phone_digits: str) -> None:
        """updateUser({ phone }) unless that change is already pending, then verifyOtp({ type: 'phone_change' })
        for this user's row: the phone change a user completes with the code sent to the number."""
        row = self._conn.execute("select phone_change from users where id = %s", (user_id,)).fetchone()
        if row is None or row["phone_change"] != phone_digits:
            self.request_phone_change(user_id, phone_digits)
        self.verify_phone_change(phone_digits, found=user_id)

    def sign_in_with_phone_otp(self, user_id: uuid.UUID) -> None:
        """signInWithOtp({ phone }) + verifyOtp({ type: 'sms' }) of a user who has the phone already: GoTrue's
        ConfirmPhone sets phone_confirmed_at to now, proving the number again (updateUser with the same phone
        sends nothing)."""
        self.verify_phone_sign_in(user_id)

    def request_phone_code(self, phone_digits: str, password_hash: str | None = None) -> uuid.UUID:
        """signInWithOtp({ phone }), or signUp({ phone, password }) with password_hash, confirmations on.

        A number no user holds: Signup inserts the user (SmsOtp passes a random password, so an OTP-only
        user has a password hash too), SetRole, the phone identity and its metadata, then
        sendPhoneConfirmation stores the code's hash and confirmation_sent_at. A number a user holds: only
        sendPhoneConfirmation's UPDATE (Signup does not touch an unconfirmed user it finds), so a sign-up's
        password stays whoever later asks for the code.
        """
        found = self._conn.execute(
            "select id, phone_confirmed_at from users where instance_id = %s and phone = %s"
            " and aud = 'authenticated' and is_sso_user = false",
            (NIL_UUID, phone_digits),
        ).fetchone()
        if found is None:
            user_id = uuid.uuid4()
            identity = {"sub": str(user_id), "email_verified": False, "phone_verified": False}
            with self._conn.transaction():
                self._insert(user_id, "phone", None, phone_digits, {}, password_hash or _bcrypt_shaped_hash())
                self._add_identity(user_id, "phone", identity)
                self._set(user_id, "raw_user_meta_data = %s", json.dumps(identity))
        else:
            user_id = found["id"]
            if password_hash is not None and found["phone_confirmed_at"] is not None:
                return user_id  # signUp of a confirmed number: UserExistsError, nothing written
        self._set(user_id, "confirmation_sent_at = now(), confirmation_token = %s", _token_hash(phone_digits))
        return user_id

    def verify_phone_code(self, phone_digits: str) -> uuid.UUID:
        """verifyOtp({ phone, token, type: 'sms' }): the user holding the number (phone is unique), then
        User.ConfirmPhone clears the code and sets phone_confirmed_at in one UPDATE, then the sign-in."""
        found = self._conn.execute(
            "select id from users where instance_id = %s and phone = %s and aud = 'authenticated'"
            " and is_sso_user = false",
            (NIL_UUID, phone_digits),
        ).fetchone()
        assert found is not None, f"no user holds {phone_digits}"
        self.verify_phone_sign_in(found["id"])
        return found["id"]  # type: ignore[no-any-return]

    def verify_phone_change(self, phone_digits: str, found: uuid.UUID | None = None) -> uuid.UUID:
        """verifyOtp({ phone, token, type: 'phone_change' }): verifyUserAndToken finds the user by
        `phone_change = <number>` with no order (the first row the scan meets), and with test codes or
        Twilio Verify checks the code per number, not against that row's own token. `found` names the row
        that lookup returned when several accounts have the number pending. Then the phone identity,
        User.ConfirmPhoneChange's one UPDATE, the providers list and the sign-in."""
        if found is None:
            row = self._conn.execute(
                "select id from users where instance_id = %s and phone_change = %s and aud = 'authenticated'"
                " and is_sso_user = false limit 1",
                (NIL_UUID, phone_digits),
            ).fetchone()
            assert row is not None, f"no user has a change to {phone_digits} pending"
            found = row["id"]
        with self._conn.transaction():
            self._put_phone_identity(found, phone_digits, verified=True)
            self._set(
                found,
                "phone = phone_change, phone_change = '', phone_change_token = '', phone_confirmed_at = now()",
            )
            self._set(
                found,
                "raw_app_meta_data = jsonb_set(raw_app_meta_data, '{providers}', (raw_app_meta_data -> 'providers')"
                " || case when raw_app_meta_data -> 'providers' ? 'phone' then '[]' else '[\"phone\"]' end::jsonb)",
            )
            self._set(found, "last_sign_in_at = now()")
        return found

    def admin_update_user(
        self, user_id: uuid.UUID, phone: str | None = None, phone_confirm: bool = False
    ) -> None:
        """auth.admin.updateUserById(id, { phone, phone_confirm }) (adminUserUpdate), in its order: ConfirmPhone
        first (on the row still holding the number it had), then the phone identity, then SetPhone, which
        writes the phone column alone and leaves phone_confirmed_at as it was."""
        with self._conn.transaction():
            if phone_confirm:
                self._set(user_id, "confirmation_token = '', phone_confirmed_at = now()")
            if phone is not None:
                self._put_phone_identity(user_id, phone, verified=phone_confirm)
                self._set(user_id, "phone = %s", phone)

    def create_user(self, phone_digits: str, phone_confirm: bool = False) -> uuid.UUID:
        """auth.admin.createUser({ phone, phone_confirm }) (adminUserCreate): inserted unconfirmed (with a
        random password), then the phone identity, SetRole and ConfirmPhone in later statements."""
        user_id = uuid.uuid4()
        identity = {
            "sub": str(user_id),
            "phone": phone_digits,
            "email_verified": False,
            "phone_verified": False,
        }
        with self._conn.transaction():
            self._insert(user_id, "phone", None, phone_digits, {}, _bcrypt_shaped_hash())
            self._add_identity(user_id, "phone", identity)
            self._set(user_id, "role = 'authenticated'")
            if phone_confirm:
                self._set(user_id, "confirmation_token = '', phone_confirmed_at = now()")
        return user_id

    def _put_phone_identity(self, user_id: uuid.UUID, phone_digits: str, verified: bool) -> None:
        """createNewIdentity for a user without a phone identity, UpdateIdentityData for one with it."""
        data = {
            "sub": str(user_id),
            "phone": phone_digits,
            "email_verified": False,
            "phone_verified": verified,
        }
        self._conn.execute(
            """
            insert into identities (provider_id, user_id, identity_data, provider,
              last_sign_in_at, created_at, updated_at)
            values (%s, %s, %s, 'phone', now(), now(), now())
            on conflict (provider_id, provider) do update
            set identity_data = identities.identity_data || jsonb_build_object('phone', %s::text,
                  'phone_verified', %s or coalesce((identities.identity_data ->> 'phone_verified')::boolean, false)),
                updated_at = now()
            """,
            (str(user_id), user_id, json.dumps(data), phone_digits, verified),
        )

    def sso_sign_in(self, email: str) -> uuid.UUID:
        """First SAML/OIDC sign-in of a verified address (createAccountFromExternalIdentity): signupNewUser
        inserts an SSO user (is_sso_user, so another user may hold the same address), SetRole, the identity,
        then Confirm sets email_confirmed_at in its own UPDATE."""
        user_id = uuid.uuid4()
        email = email.lower()
        with self._conn.transaction():
            self._conn.execute(
                """
                insert into users (instance_id, id, aud, role, email, encrypted_password,
                  confirmation_token, recovery_token, email_change_token_new, email_change,
                  raw_app_meta_data, raw_user_meta_data, is_sso_user, created_at, updated_at, is_anonymous)
                values (%s, %s, '', '', %s, '', '', '', '', '',
                  '{"provider": "sso:acme", "providers": ["sso:acme"]}', '{}', true, now(), now(), false)
                """,
                (NIL_UUID, user_id, email),
            )
            self._conn.execute(
                "update users set aud = 'authenticated', role = 'authenticated', updated_at = now() where id = %s",
                (user_id,),
            )
            self._conn.execute(
                """
                insert into identities (provider_id, user_id, identity_data, provider,
                  last_sign_in_at, created_at, updated_at)
                values (%s, %s, %s, 'sso:acme', now(), now(), now())
                """,
                (f"acme|{user_id}", user_id, json.dumps({"sub": f"acme|{user_id}", "email": email})),
            )
            self._conn.execute(
                "update users set confirmation_token = '', email_confirmed_at = now(), updated_at = now()"
                " where id = %s",
                (user_id,),
            )
        return user_id

    def confirm_email_change(self, user_id: uuid.UUID, new_email: str) -> None:
        """The link of updateUser({ email }) followed (User.ConfirmEmailChange): email replaced and the change
        cleared in one UPDATE, then, for a user whose email was never confirmed (a phone user adding one),
        User.Confirm sets email_confirmed_at in a second UPDATE."""
        with self._conn.transaction():
            self._conn.execute(
                "update users set email = %s, email_change = '', email_change_token_current = '',"
                " email_change_token_new = '', email_change_confirm_status = 0, updated_at = now() where id = %s",
                (new_email.lower(), user_id),
            )
            row = self._conn.execute(
                "select email_confirmed_at from users where id = %s", (user_id,)
            ).fetchone()
            if row is not None and row["email_confirmed_at"] is None:
                self._conn.execute(
                    "update users set confirmation_token = '', email_confirmed_at = now(), updated_at = now()"
                    " where id = %s",
                    (user_id,),
                )

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
