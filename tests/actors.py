"""Test actors that behave as Supabase's own services do against the database.

- `Postgrest` opens one transaction per request as PostgREST does: connected as
  `authenticator`, search_path and JWT claims set locally, then SET LOCAL ROLE to
  the claim's role with that role's statement_timeout in force.
- `SupabaseAuth` connects as `supabase_auth_admin` and writes what Supabase Auth
  (GoTrue) writes for sign-up, phone confirmation, email change and deletion.
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

import psycopg
from psycopg.rows import dict_row

NIL_UUID = "00000000-0000-0000-0000-000000000000"
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
    def request(self, claims: Claims) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
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


def _bcrypt_shaped_hash() -> str:
    """A password hash nobody knows the password of, shaped as GoTrue stores one."""
    return "$2a$10$" + secrets.token_urlsafe(40)[:53]


def _token_hash(phone_or_email: str) -> str:
    """crypto.GenerateTokenHash: the SHA-224 of the number (or address) and a fresh code, in hex."""
    return hashlib.sha224((phone_or_email + f"{secrets.randbelow(10**6):06d}").encode()).hexdigest()


class SupabaseAuth:
    """Writes to auth.* exactly as Supabase Auth does, connected as supabase_auth_admin."""

    def __init__(self, db: Database) -> None:
        self._conn = db.connect("supabase_auth_admin", autocommit=True)

    def close(self) -> None:
        self._conn.close()

    def sign_up(
        self,
        email: str,
        password_hash: str = "$2a$10$not.a.real.hash.but.shaped.like.one.............",
        metadata: dict[str, Any] | None = None,
        confirm: bool = True,
    ) -> uuid.UUID:
        """Email sign-up: insert with role '' and empty tokens, then role -> authenticated, then the identity."""
        user_id = uuid.uuid4()
        email = email.lower()
        with self._conn.transaction():
            self._conn.execute(
                """
                insert into users (instance_id, id, aud, role, email, encrypted_password,
                  confirmation_token, recovery_token, email_change_token_new, email_change,
                  raw_app_meta_data, raw_user_meta_data, is_super_admin, created_at, updated_at,
                  is_anonymous)
                values (%s, %s, '', '', %s, %s, '', '', '', '',
                  '{"provider": "email", "providers": ["email"]}', %s, null, now(), now(), false)
                """,
                (NIL_UUID, user_id, email, password_hash, json.dumps(metadata or {})),
            )
            self._conn.execute(
                "update users set aud = 'authenticated', role = 'authenticated', updated_at = now() where id = %s",
                (user_id,),
            )
            self._conn.execute(
                """
                insert into identities (provider_id, user_id, identity_data, provider,
                  last_sign_in_at, created_at, updated_at)
                values (%s, %s, %s, 'email', now(), now(), now())
                """,
                (str(user_id), user_id, json.dumps({"sub": str(user_id), "email": email})),
            )
        if confirm:
            self.confirm_email(user_id)
        return user_id

    def sign_up_with_phone(self, phone_digits: str) -> uuid.UUID:
        """signInWithOtp({ phone }) for a new number, then verifyOtp({ type: 'sms' }) with the code it sent."""
        user_id = self.request_phone_code(phone_digits)
        self.verify_phone_code(phone_digits)
        return user_id

    def request_phone_code(self, phone_digits: str, password_hash: str | None = None) -> uuid.UUID:
        """signInWithOtp({ phone }), or signUp({ phone, password }) with password_hash, confirmations on.

        A number no user holds: Signup inserts the user (SmsOtp passes a random 64-character password, so an
        OTP-only user has a password hash too), SetRole, the phone identity, then sendPhoneConfirmation stores
        the code's hash and confirmation_sent_at, all in one transaction. A number a user holds: only
        sendPhoneConfirmation's UPDATE (Signup does not touch an unconfirmed user it finds: "we can't be sure
        of their claimed identity"), so a sign-up's password stays whoever later asks for the code.
        """
        found = self._conn.execute(
            "select id, phone_confirmed_at from users where instance_id = %s and phone = %s"
            " and aud = 'authenticated' and is_sso_user = false",
            (NIL_UUID, phone_digits),
        ).fetchone()
        with self._conn.transaction():
            if found is None:
                user_id = uuid.uuid4()
                self._conn.execute(
                    """
                    insert into users (instance_id, id, aud, role, phone, encrypted_password,
                      confirmation_token, recovery_token, email_change_token_new, email_change,
                      raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
                    values (%s, %s, 'authenticated', '', %s, %s, '', '', '', '',
                      '{"provider": "phone", "providers": ["phone"]}', '{}', now(), now(), false)
                    """,
                    (NIL_UUID, user_id, phone_digits, password_hash or _bcrypt_shaped_hash()),
                )
                self._conn.execute(
                    "update users set role = 'authenticated', updated_at = now() where id = %s", (user_id,)
                )
                self._conn.execute(
                    """
                    insert into identities (provider_id, user_id, identity_data, provider,
                      last_sign_in_at, created_at, updated_at)
                    values (%s, %s, %s, 'phone', now(), now(), now())
                    """,
                    (str(user_id), user_id, json.dumps({"sub": str(user_id), "phone": phone_digits})),
                )
            else:
                user_id = found["id"]
                if password_hash is not None and found["phone_confirmed_at"] is not None:
                    return user_id  # signUp of a confirmed number: UserExistsError, nothing written
            self._conn.execute(
                "update users set confirmation_token = %s, confirmation_sent_at = now(), updated_at = now()"
                " where id = %s",
                (_token_hash(phone_digits), user_id),
            )
        return user_id

    def verify_phone_code(self, phone_digits: str) -> uuid.UUID:
        """verifyOtp({ phone, token, type: 'sms' }): the user holding the number (phone is unique), then
        User.ConfirmPhone clears the code and sets phone_confirmed_at in one UPDATE."""
        found = self._conn.execute(
            "select id from users where instance_id = %s and phone = %s and aud = 'authenticated'"
            " and is_sso_user = false",
            (NIL_UUID, phone_digits),
        ).fetchone()
        assert found is not None, f"no user holds {phone_digits}"
        self._conn.execute(
            "update users set confirmation_token = '', phone_confirmed_at = now(), updated_at = now() where id = %s",
            (found["id"],),
        )
        return found["id"]  # type: ignore[no-any-return]

    def verify_phone_change(self, phone_digits: str, found: uuid.UUID | None = None) -> uuid.UUID:
        """verifyOtp({ phone, token, type: 'phone_change' }): verifyUserAndToken finds the user by
        `phone_change = <number>` with no order (FindUserByPhoneChangeAndAudience; the first row the scan
        meets), and with test codes or Twilio Verify checks the code per number, not against that row's own
        token. `found` names the row that lookup returned when several accounts have the number pending.
        smsVerify then creates (or updates) the phone identity and User.ConfirmPhoneChange moves phone_change
        into phone and sets phone_confirmed_at in one UPDATE."""
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
            self._conn.execute(
                "update users set phone = phone_change, phone_change = '', phone_change_token = '',"
                " phone_confirmed_at = now(), updated_at = now() where id = %s",
                (found,),
            )
        return found

    def admin_update_user(
        self, user_id: uuid.UUID, phone: str | None = None, phone_confirm: bool = False
    ) -> None:
        """auth.admin.updateUserById(id, { phone, phone_confirm }) (adminUserUpdate), in its order: ConfirmPhone
        first (with the number the user had), then the phone identity, then SetPhone, which writes the phone
        column alone and leaves phone_confirmed_at as it was."""
        with self._conn.transaction():
            if phone_confirm:
                self._conn.execute(
                    "update users set confirmation_token = '', phone_confirmed_at = now(), updated_at = now()"
                    " where id = %s",
                    (user_id,),
                )
            if phone is not None:
                self._put_phone_identity(user_id, phone, verified=phone_confirm)
                self._conn.execute(
                    "update users set phone = %s, updated_at = now() where id = %s", (phone, user_id)
                )

    def create_user(self, phone_digits: str, phone_confirm: bool = False) -> uuid.UUID:
        """auth.admin.createUser({ phone, phone_confirm }) (adminUserCreate): the row is inserted unconfirmed,
        with no password, then the phone identity, SetRole and ConfirmPhone in later statements of one
        transaction."""
        user_id = uuid.uuid4()
        with self._conn.transaction():
            self._conn.execute(
                """
                insert into users (instance_id, id, aud, role, phone, encrypted_password,
                  confirmation_token, recovery_token, email_change_token_new, email_change,
                  raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
                values (%s, %s, 'authenticated', '', %s, '', '', '', '', '',
                  '{"provider": "phone", "providers": ["phone"]}', '{}', now(), now(), false)
                """,
                (NIL_UUID, user_id, phone_digits),
            )
            self._put_phone_identity(user_id, phone_digits, verified=False)
            self._conn.execute(
                "update users set role = 'authenticated', updated_at = now() where id = %s", (user_id,)
            )
            if phone_confirm:
                self._conn.execute(
                    "update users set confirmation_token = '', phone_confirmed_at = now(), updated_at = now()"
                    " where id = %s",
                    (user_id,),
                )
        return user_id

    def _put_phone_identity(self, user_id: uuid.UUID, phone_digits: str, verified: bool) -> None:
        """createNewIdentity for a user without a phone identity, UpdateIdentityData for one with it."""
        data = json.dumps({"sub": str(user_id), "phone": phone_digits, "phone_verified": verified})
        self._conn.execute(
            """
            insert into identities (provider_id, user_id, identity_data, provider,
              last_sign_in_at, created_at, updated_at)
            values (%s, %s, %s, 'phone', now(), now(), now())
            on conflict (provider_id, provider) do update
            set identity_data = identities.identity_data || excluded.identity_data, updated_at = now()
            """,
            (str(user_id), user_id, data),
        )

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

    def confirm_email(self, user_id: uuid.UUID) -> None:
        """The sign-up confirmation link (User.Confirm): the token cleared and email_confirmed_at set in one
        UPDATE, then email_verified written into the user metadata."""
        with self._conn.transaction():
            self._conn.execute(
                "update users set confirmation_token = '', email_confirmed_at = now(), updated_at = now()"
                " where id = %s",
                (user_id,),
            )
            self._conn.execute(
                "update users set raw_user_meta_data = raw_user_meta_data || '{\"email_verified\": true}',"
                " updated_at = now() where id = %s",
                (user_id,),
            )

    def request_phone_change(self, user_id: uuid.UUID, phone_digits: str) -> None:
        """updateUser({ phone }) with confirmations on (sendPhoneConfirmation): the change, its code's hash and
        phone_change_sent_at in one UPDATE; nothing is confirmed."""
        self._conn.execute(
            "update users set phone_change = %s, phone_change_token = %s,"
            " phone_change_sent_at = now(), updated_at = now() where id = %s",
            (phone_digits, _token_hash(phone_digits), user_id),
        )

    def confirm_phone(self, user_id: uuid.UUID, phone_digits: str) -> None:
        """updateUser({ phone }) unless that change is already pending, then verifyOtp({ type: 'phone_change' })
        for this user's row: the phone change a user completes with the code sent to the number."""
        row = self._conn.execute("select phone_change from users where id = %s", (user_id,)).fetchone()
        if row is None or row["phone_change"] != phone_digits:
            self.request_phone_change(user_id, phone_digits)
        self.verify_phone_change(phone_digits, found=user_id)

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
        """A confirmed email change: email replaced, email_change cleared."""
        self._conn.execute(
            "update users set email = %s, email_change = '', email_change_token_new = '',"
            " email_change_confirm_status = 0, updated_at = now() where id = %s",
            (new_email.lower(), user_id),
        )

    def delete_user(self, user_id: uuid.UUID) -> None:
        self._conn.execute("delete from users where id = %s", (user_id,))

    def user(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        return self._conn.execute("select * from users where id = %s", (user_id,)).fetchone()
