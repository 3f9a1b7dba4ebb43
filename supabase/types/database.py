from __future__ import annotations

import datetime
import uuid
from typing import (
    Annotated,
    Any,
    List,
    Literal,
    Optional,
    TypedDict,
)
from typing_extensions import NotRequired, TypeAlias

from pydantic import BaseModel, Field, JsonValue

class PublicOutboundMessages(BaseModel):
    attempts: int = Field(alias="attempts")
    body: Optional[str] = Field(alias="body")
    claimed_until: Optional[datetime.datetime] = Field(alias="claimed_until")
    content_sid: Optional[str] = Field(alias="content_sid")
    content_variables: Optional[JsonValue] = Field(alias="content_variables")
    delivered_at: Optional[datetime.datetime] = Field(alias="delivered_at")
    error_code: Optional[int] = Field(alias="error_code")
    error_message: Optional[str] = Field(alias="error_message")
    failed_at: Optional[datetime.datetime] = Field(alias="failed_at")
    id: uuid.UUID = Field(alias="id")
    idempotency_key: str = Field(alias="idempotency_key")
    message_sid: Optional[str] = Field(alias="message_sid")
    queued_at: datetime.datetime = Field(alias="queued_at")
    read_at: Optional[datetime.datetime] = Field(alias="read_at")
    sending_at: Optional[datetime.datetime] = Field(alias="sending_at")
    sent_at: Optional[datetime.datetime] = Field(alias="sent_at")
    status: str = Field(alias="status")
    to_address: str = Field(alias="to_address")
    undelivered_at: Optional[datetime.datetime] = Field(alias="undelivered_at")
    unknown_at: Optional[datetime.datetime] = Field(alias="unknown_at")
    updated_at: datetime.datetime = Field(alias="updated_at")
    user_id: uuid.UUID = Field(alias="user_id")

class PublicOutboundMessagesInsert(TypedDict):
    attempts: NotRequired[Annotated[int, Field(alias="attempts")]]
    body: NotRequired[Annotated[Optional[str], Field(alias="body")]]
    claimed_until: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="claimed_until")]]
    content_sid: NotRequired[Annotated[Optional[str], Field(alias="content_sid")]]
    content_variables: NotRequired[Annotated[Optional[JsonValue], Field(alias="content_variables")]]
    delivered_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="delivered_at")]]
    error_code: NotRequired[Annotated[Optional[int], Field(alias="error_code")]]
    error_message: NotRequired[Annotated[Optional[str], Field(alias="error_message")]]
    failed_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="failed_at")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    idempotency_key: Annotated[str, Field(alias="idempotency_key")]
    message_sid: NotRequired[Annotated[Optional[str], Field(alias="message_sid")]]
    queued_at: NotRequired[Annotated[datetime.datetime, Field(alias="queued_at")]]
    read_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="read_at")]]
    sending_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="sending_at")]]
    sent_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="sent_at")]]
    status: NotRequired[Annotated[str, Field(alias="status")]]
    to_address: Annotated[str, Field(alias="to_address")]
    undelivered_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="undelivered_at")]]
    unknown_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="unknown_at")]]
    updated_at: NotRequired[Annotated[datetime.datetime, Field(alias="updated_at")]]
    user_id: Annotated[uuid.UUID, Field(alias="user_id")]

class PublicOutboundMessagesUpdate(TypedDict):
    attempts: NotRequired[Annotated[int, Field(alias="attempts")]]
    body: NotRequired[Annotated[Optional[str], Field(alias="body")]]
    claimed_until: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="claimed_until")]]
    content_sid: NotRequired[Annotated[Optional[str], Field(alias="content_sid")]]
    content_variables: NotRequired[Annotated[Optional[JsonValue], Field(alias="content_variables")]]
    delivered_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="delivered_at")]]
    error_code: NotRequired[Annotated[Optional[int], Field(alias="error_code")]]
    error_message: NotRequired[Annotated[Optional[str], Field(alias="error_message")]]
    failed_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="failed_at")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    idempotency_key: NotRequired[Annotated[str, Field(alias="idempotency_key")]]
    message_sid: NotRequired[Annotated[Optional[str], Field(alias="message_sid")]]
    queued_at: NotRequired[Annotated[datetime.datetime, Field(alias="queued_at")]]
    read_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="read_at")]]
    sending_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="sending_at")]]
    sent_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="sent_at")]]
    status: NotRequired[Annotated[str, Field(alias="status")]]
    to_address: NotRequired[Annotated[str, Field(alias="to_address")]]
    undelivered_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="undelivered_at")]]
    unknown_at: NotRequired[Annotated[Optional[datetime.datetime], Field(alias="unknown_at")]]
    updated_at: NotRequired[Annotated[datetime.datetime, Field(alias="updated_at")]]
    user_id: NotRequired[Annotated[uuid.UUID, Field(alias="user_id")]]

class PublicUserMerges(BaseModel):
    absorbed_id: Optional[uuid.UUID] = Field(alias="absorbed_id")
    auth_id: Optional[uuid.UUID] = Field(alias="auth_id")
    created_at: datetime.datetime = Field(alias="created_at")
    id: uuid.UUID = Field(alias="id")
    moved: JsonValue = Field(alias="moved")
    outcome: str = Field(alias="outcome")
    phone_number: Optional[str] = Field(alias="phone_number")
    reason: Optional[str] = Field(alias="reason")
    survivor_id: Optional[uuid.UUID] = Field(alias="survivor_id")
    triggered_by: str = Field(alias="triggered_by")

class PublicUserMergesInsert(TypedDict):
    absorbed_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="absorbed_id")]]
    auth_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="auth_id")]]
    created_at: NotRequired[Annotated[datetime.datetime, Field(alias="created_at")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    moved: NotRequired[Annotated[JsonValue, Field(alias="moved")]]
    outcome: Annotated[str, Field(alias="outcome")]
    phone_number: NotRequired[Annotated[Optional[str], Field(alias="phone_number")]]
    reason: NotRequired[Annotated[Optional[str], Field(alias="reason")]]
    survivor_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="survivor_id")]]
    triggered_by: Annotated[str, Field(alias="triggered_by")]

class PublicUserMergesUpdate(TypedDict):
    absorbed_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="absorbed_id")]]
    auth_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="auth_id")]]
    created_at: NotRequired[Annotated[datetime.datetime, Field(alias="created_at")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    moved: NotRequired[Annotated[JsonValue, Field(alias="moved")]]
    outcome: NotRequired[Annotated[str, Field(alias="outcome")]]
    phone_number: NotRequired[Annotated[Optional[str], Field(alias="phone_number")]]
    reason: NotRequired[Annotated[Optional[str], Field(alias="reason")]]
    survivor_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="survivor_id")]]
    triggered_by: NotRequired[Annotated[str, Field(alias="triggered_by")]]

class PublicUsers(BaseModel):
    auth_id: Optional[uuid.UUID] = Field(alias="auth_id")
    created_at: datetime.datetime = Field(alias="created_at")
    email: Optional[str] = Field(alias="email")
    full_name: Optional[str] = Field(alias="full_name")
    id: uuid.UUID = Field(alias="id")
    phone_number: Optional[str] = Field(alias="phone_number")
    updated_at: datetime.datetime = Field(alias="updated_at")
    whatsapp_user_id: Optional[str] = Field(alias="whatsapp_user_id")

class PublicUsersInsert(TypedDict):
    auth_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="auth_id")]]
    created_at: NotRequired[Annotated[datetime.datetime, Field(alias="created_at")]]
    email: NotRequired[Annotated[Optional[str], Field(alias="email")]]
    full_name: NotRequired[Annotated[Optional[str], Field(alias="full_name")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    phone_number: NotRequired[Annotated[Optional[str], Field(alias="phone_number")]]
    updated_at: NotRequired[Annotated[datetime.datetime, Field(alias="updated_at")]]
    whatsapp_user_id: NotRequired[Annotated[Optional[str], Field(alias="whatsapp_user_id")]]

class PublicUsersUpdate(TypedDict):
    auth_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="auth_id")]]
    created_at: NotRequired[Annotated[datetime.datetime, Field(alias="created_at")]]
    email: NotRequired[Annotated[Optional[str], Field(alias="email")]]
    full_name: NotRequired[Annotated[Optional[str], Field(alias="full_name")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    phone_number: NotRequired[Annotated[Optional[str], Field(alias="phone_number")]]
    updated_at: NotRequired[Annotated[datetime.datetime, Field(alias="updated_at")]]
    whatsapp_user_id: NotRequired[Annotated[Optional[str], Field(alias="whatsapp_user_id")]]

class PublicWhatsappConsentKeywords(BaseModel):
    effect: str = Field(alias="effect")
    keyword: str = Field(alias="keyword")
    reply: str = Field(alias="reply")

class PublicWhatsappConsentKeywordsInsert(TypedDict):
    effect: Annotated[str, Field(alias="effect")]
    keyword: Annotated[str, Field(alias="keyword")]
    reply: Annotated[str, Field(alias="reply")]

class PublicWhatsappConsentKeywordsUpdate(TypedDict):
    effect: NotRequired[Annotated[str, Field(alias="effect")]]
    keyword: NotRequired[Annotated[str, Field(alias="keyword")]]
    reply: NotRequired[Annotated[str, Field(alias="reply")]]

class PublicWhatsappMessages(BaseModel):
    body: str = Field(alias="body")
    id: uuid.UUID = Field(alias="id")
    media: JsonValue = Field(alias="media")
    message_sid: str = Field(alias="message_sid")
    profile_name: Optional[str] = Field(alias="profile_name")
    received_at: datetime.datetime = Field(alias="received_at")
    user_created: bool = Field(alias="user_created")
    user_id: uuid.UUID = Field(alias="user_id")

class PublicWhatsappMessagesInsert(TypedDict):
    body: NotRequired[Annotated[str, Field(alias="body")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    media: NotRequired[Annotated[JsonValue, Field(alias="media")]]
    message_sid: Annotated[str, Field(alias="message_sid")]
    profile_name: NotRequired[Annotated[Optional[str], Field(alias="profile_name")]]
    received_at: NotRequired[Annotated[datetime.datetime, Field(alias="received_at")]]
    user_created: NotRequired[Annotated[bool, Field(alias="user_created")]]
    user_id: Annotated[uuid.UUID, Field(alias="user_id")]

class PublicWhatsappMessagesUpdate(TypedDict):
    body: NotRequired[Annotated[str, Field(alias="body")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    media: NotRequired[Annotated[JsonValue, Field(alias="media")]]
    message_sid: NotRequired[Annotated[str, Field(alias="message_sid")]]
    profile_name: NotRequired[Annotated[Optional[str], Field(alias="profile_name")]]
    received_at: NotRequired[Annotated[datetime.datetime, Field(alias="received_at")]]
    user_created: NotRequired[Annotated[bool, Field(alias="user_created")]]
    user_id: NotRequired[Annotated[uuid.UUID, Field(alias="user_id")]]

class PublicWhatsappNumberReassignments(BaseModel):
    created_at: datetime.datetime = Field(alias="created_at")
    id: uuid.UUID = Field(alias="id")
    new_user_id: Optional[uuid.UUID] = Field(alias="new_user_id")
    new_whatsapp_user_id: Optional[str] = Field(alias="new_whatsapp_user_id")
    phone_number: str = Field(alias="phone_number")
    previous_user_id: uuid.UUID = Field(alias="previous_user_id")
    previous_whatsapp_user_id: str = Field(alias="previous_whatsapp_user_id")
    reason: str = Field(alias="reason")

class PublicWhatsappNumberReassignmentsInsert(TypedDict):
    created_at: NotRequired[Annotated[datetime.datetime, Field(alias="created_at")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    new_user_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="new_user_id")]]
    new_whatsapp_user_id: NotRequired[Annotated[Optional[str], Field(alias="new_whatsapp_user_id")]]
    phone_number: Annotated[str, Field(alias="phone_number")]
    previous_user_id: Annotated[uuid.UUID, Field(alias="previous_user_id")]
    previous_whatsapp_user_id: Annotated[str, Field(alias="previous_whatsapp_user_id")]
    reason: Annotated[str, Field(alias="reason")]

class PublicWhatsappNumberReassignmentsUpdate(TypedDict):
    created_at: NotRequired[Annotated[datetime.datetime, Field(alias="created_at")]]
    id: NotRequired[Annotated[uuid.UUID, Field(alias="id")]]
    new_user_id: NotRequired[Annotated[Optional[uuid.UUID], Field(alias="new_user_id")]]
    new_whatsapp_user_id: NotRequired[Annotated[Optional[str], Field(alias="new_whatsapp_user_id")]]
    phone_number: NotRequired[Annotated[str, Field(alias="phone_number")]]
    previous_user_id: NotRequired[Annotated[uuid.UUID, Field(alias="previous_user_id")]]
    previous_whatsapp_user_id: NotRequired[Annotated[str, Field(alias="previous_whatsapp_user_id")]]
    reason: NotRequired[Annotated[str, Field(alias="reason")]]

class PublicWhatsappOptOuts(BaseModel):
    address_hash: bytes = Field(alias="address_hash")
    changed_at: datetime.datetime = Field(alias="changed_at")
    keyword: Optional[str] = Field(alias="keyword")
    opted_out: bool = Field(alias="opted_out")

class PublicWhatsappOptOutsInsert(TypedDict):
    address_hash: Annotated[bytes, Field(alias="address_hash")]
    changed_at: NotRequired[Annotated[datetime.datetime, Field(alias="changed_at")]]
    keyword: NotRequired[Annotated[Optional[str], Field(alias="keyword")]]
    opted_out: Annotated[bool, Field(alias="opted_out")]

class PublicWhatsappOptOutsUpdate(TypedDict):
    address_hash: NotRequired[Annotated[bytes, Field(alias="address_hash")]]
    changed_at: NotRequired[Annotated[datetime.datetime, Field(alias="changed_at")]]
    keyword: NotRequired[Annotated[Optional[str], Field(alias="keyword")]]
    opted_out: NotRequired[Annotated[bool, Field(alias="opted_out")]]

class PublicWhatsappSettings(BaseModel):
    business_number: str = Field(alias="business_number")
    id: bool = Field(alias="id")
    updated_at: datetime.datetime = Field(alias="updated_at")

class PublicWhatsappSettingsInsert(TypedDict):
    business_number: Annotated[str, Field(alias="business_number")]
    id: NotRequired[Annotated[bool, Field(alias="id")]]
    updated_at: NotRequired[Annotated[datetime.datetime, Field(alias="updated_at")]]

class PublicWhatsappSettingsUpdate(TypedDict):
    business_number: NotRequired[Annotated[str, Field(alias="business_number")]]
    id: NotRequired[Annotated[bool, Field(alias="id")]]
    updated_at: NotRequired[Annotated[datetime.datetime, Field(alias="updated_at")]]

class PublicWhatsappLinkCode(BaseModel):
    code: Optional[str] = Field(alias="code")
    expires_at: Optional[datetime.datetime] = Field(alias="expires_at")
    whatsapp_url: Optional[str] = Field(alias="whatsapp_url")

class PublicWhatsappSender(BaseModel):
    id: Optional[uuid.UUID] = Field(alias="id")
    auth_id: Optional[uuid.UUID] = Field(alias="auth_id")
    phone_number: Optional[str] = Field(alias="phone_number")
    whatsapp_user_id: Optional[str] = Field(alias="whatsapp_user_id")
    email: Optional[str] = Field(alias="email")
    full_name: Optional[str] = Field(alias="full_name")
    created_at: Optional[datetime.datetime] = Field(alias="created_at")
    updated_at: Optional[datetime.datetime] = Field(alias="updated_at")
    created: Optional[bool] = Field(alias="created")
