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
