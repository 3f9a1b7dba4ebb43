
export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[]

export type Database = {
  
  "public": {
          Tables: {
            "outbound_messages": {
                  Row: {
                    "attempts": number,"body": string | null,"claimed_until": string | null,"content_sid": string | null,"content_variables": Json | null,"delivered_at": string | null,"error_code": number | null,"error_message": string | null,"failed_at": string | null,"id": string,"idempotency_key": string,"message_sid": string | null,"queued_at": string,"read_at": string | null,"sending_at": string | null,"sent_at": string | null,"status": string,"to_address": string,"undelivered_at": string | null,"unknown_at": string | null,"updated_at": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attempts"?: number,"body"?: string | null,"claimed_until"?: string | null,"content_sid"?: string | null,"content_variables"?: Json | null,"delivered_at"?: string | null,"error_code"?: number | null,"error_message"?: string | null,"failed_at"?: string | null,"id"?: string,"idempotency_key": string,"message_sid"?: string | null,"queued_at"?: string,"read_at"?: string | null,"sending_at"?: string | null,"sent_at"?: string | null,"status"?: string,"to_address": string,"undelivered_at"?: string | null,"unknown_at"?: string | null,"updated_at"?: string,"user_id": string
                  }
                  Update: {
                    "attempts"?: number,"body"?: string | null,"claimed_until"?: string | null,"content_sid"?: string | null,"content_variables"?: Json | null,"delivered_at"?: string | null,"error_code"?: number | null,"error_message"?: string | null,"failed_at"?: string | null,"id"?: string,"idempotency_key"?: string,"message_sid"?: string | null,"queued_at"?: string,"read_at"?: string | null,"sending_at"?: string | null,"sent_at"?: string | null,"status"?: string,"to_address"?: string,"undelivered_at"?: string | null,"unknown_at"?: string | null,"updated_at"?: string,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "outbound_messages_user_id_fkey"
      columns: ["user_id"]
isOneToOne: false
      referencedRelation: "users"
      referencedColumns: ["id"]
    }
                  ]
                },"user_merges": {
                  Row: {
                    "absorbed_id": string | null,"auth_id": string | null,"created_at": string,"id": string,"moved": NonNullable<Json>,"outcome": string,"phone_number": string | null,"reason": string | null,"survivor_id": string | null,"triggered_by": string
                  }
                  ComputedFields: never
                  Insert: {
                    "absorbed_id"?: string | null,"auth_id"?: string | null,"created_at"?: string,"id"?: string,"moved"?: NonNullable<Json>,"outcome": string,"phone_number"?: string | null,"reason"?: string | null,"survivor_id"?: string | null,"triggered_by": string
                  }
                  Update: {
                    "absorbed_id"?: string | null,"auth_id"?: string | null,"created_at"?: string,"id"?: string,"moved"?: NonNullable<Json>,"outcome"?: string,"phone_number"?: string | null,"reason"?: string | null,"survivor_id"?: string | null,"triggered_by"?: string
                  }
                  Relationships: [
                    
                  ]
                },"users": {
                  Row: {
                    "auth_id": string | null,"created_at": string,"email": string | null,"full_name": string | null,"id": string,"phone_number": string | null,"updated_at": string,"whatsapp_user_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "auth_id"?: string | null,"created_at"?: string,"email"?: string | null,"full_name"?: string | null,"id"?: string,"phone_number"?: string | null,"updated_at"?: string,"whatsapp_user_id"?: string | null
                  }
                  Update: {
                    "auth_id"?: string | null,"created_at"?: string,"email"?: string | null,"full_name"?: string | null,"id"?: string,"phone_number"?: string | null,"updated_at"?: string,"whatsapp_user_id"?: string | null
                  }
                  Relationships: [
                    
                  ]
                },"whatsapp_consent_keywords": {
                  Row: {
                    "effect": string,"keyword": string,"reply": string
                  }
                  ComputedFields: never
                  Insert: {
                    "effect": string,"keyword": string,"reply": string
                  }
                  Update: {
                    "effect"?: string,"keyword"?: string,"reply"?: string
                  }
                  Relationships: [
                    
                  ]
                },"whatsapp_messages": {
                  Row: {
                    "body": string,"id": string,"media": NonNullable<Json>,"message_sid": string,"profile_name": string | null,"received_at": string,"user_created": boolean,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "body"?: string,"id"?: string,"media"?: NonNullable<Json>,"message_sid": string,"profile_name"?: string | null,"received_at"?: string,"user_created"?: boolean,"user_id": string
                  }
                  Update: {
                    "body"?: string,"id"?: string,"media"?: NonNullable<Json>,"message_sid"?: string,"profile_name"?: string | null,"received_at"?: string,"user_created"?: boolean,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "whatsapp_messages_user_id_fkey"
      columns: ["user_id"]
isOneToOne: false
      referencedRelation: "users"
      referencedColumns: ["id"]
    }
                  ]
                },"whatsapp_number_reassignments": {
                  Row: {
                    "created_at": string,"id": string,"new_user_id": string | null,"new_whatsapp_user_id": string | null,"phone_number": string,"previous_user_id": string,"previous_whatsapp_user_id": string,"reason": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"id"?: string,"new_user_id"?: string | null,"new_whatsapp_user_id"?: string | null,"phone_number": string,"previous_user_id": string,"previous_whatsapp_user_id": string,"reason": string
                  }
                  Update: {
                    "created_at"?: string,"id"?: string,"new_user_id"?: string | null,"new_whatsapp_user_id"?: string | null,"phone_number"?: string,"previous_user_id"?: string,"previous_whatsapp_user_id"?: string,"reason"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "whatsapp_number_reassignments_previous_user_id_fkey"
      columns: ["previous_user_id"]
isOneToOne: false
      referencedRelation: "users"
      referencedColumns: ["id"]
    }
                  ]
                },"whatsapp_opt_outs": {
                  Row: {
                    "address_hash": string,"changed_at": string,"keyword": string | null,"opted_out": boolean
                  }
                  ComputedFields: never
                  Insert: {
                    "address_hash": string,"changed_at"?: string,"keyword"?: string | null,"opted_out": boolean
                  }
                  Update: {
                    "address_hash"?: string,"changed_at"?: string,"keyword"?: string | null,"opted_out"?: boolean
                  }
                  Relationships: [
                    
                  ]
                },"whatsapp_settings": {
                  Row: {
                    "business_number": string,"id": boolean,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "business_number": string,"id"?: boolean,"updated_at"?: string
                  }
                  Update: {
                    "business_number"?: string,"id"?: boolean,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                }
          }
          Views: {
            [_ in never]: never
          }
          Functions: {
            "claim_outbound_messages":
{ Args: { "lease_seconds"?: number,"max_messages"?: number }; Returns: {
              "attempts": number,
"body": string | null,
"claimed_until": string | null,
"content_sid": string | null,
"content_variables": Json | null,
"delivered_at": string | null,
"error_code": number | null,
"error_message": string | null,
"failed_at": string | null,
"id": string,
"idempotency_key": string,
"message_sid": string | null,
"queued_at": string,
"read_at": string | null,
"sending_at": string | null,
"sent_at": string | null,
"status": string,
"to_address": string,
"undelivered_at": string | null,
"unknown_at": string | null,
"updated_at": string,
"user_id": string
            }[]
                          SetofOptions: {
        from: "*"
        to: "outbound_messages"
        isOneToOne: false
        isSetofReturn: true
      } },
"claim_unsettled_outbound_messages":
{ Args: { "lease_seconds"?: number,"max_messages"?: number }; Returns: {
              "attempts": number,
"body": string | null,
"claimed_until": string | null,
"content_sid": string | null,
"content_variables": Json | null,
"delivered_at": string | null,
"error_code": number | null,
"error_message": string | null,
"failed_at": string | null,
"id": string,
"idempotency_key": string,
"message_sid": string | null,
"queued_at": string,
"read_at": string | null,
"sending_at": string | null,
"sent_at": string | null,
"status": string,
"to_address": string,
"undelivered_at": string | null,
"unknown_at": string | null,
"updated_at": string,
"user_id": string
            }[]
                          SetofOptions: {
        from: "*"
        to: "outbound_messages"
        isOneToOne: false
        isSetofReturn: true
      } },
"create_whatsapp_link_code":
{ Args: Record<PropertyKey, never>; Returns: Database["public"]['CompositeTypes']["whatsapp_link_code"]
                          SetofOptions: {
        from: "*"
        to: "whatsapp_link_code"
        isOneToOne: true
        isSetofReturn: false
      } },
"forget_user":
{ Args: { "user_id": string }; Returns: {
              "rows_removed": number,"table_name": string
            }[]
                           },
"get_or_create_whatsapp_user":
{ Args: { "phone"?: string,"profile_name"?: string,"whatsapp_user_id"?: string }; Returns: Database["public"]['CompositeTypes']["whatsapp_sender"][]
                          SetofOptions: {
        from: "*"
        to: "whatsapp_sender"
        isOneToOne: false
        isSetofReturn: true
      } },
"link_whatsapp_account":
{ Args: Record<PropertyKey, never>; Returns: {
              "auth_id": string | null,
"created_at": string,
"email": string | null,
"full_name": string | null,
"id": string,
"phone_number": string | null,
"updated_at": string,
"whatsapp_user_id": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "users"
        isOneToOne: true
        isSetofReturn: false
      } },
"receive_whatsapp_message":
{ Args: { "body": string,"media"?: Json,"message_sid": string,"phone": string,"profile_name"?: string,"whatsapp_user_id"?: string }; Returns: {
              "consent_reply": string,"duplicate": boolean,"link_account": string,"link_code": string,"message_id": string,"user_created": boolean,"user_id": string
            }[]
                           },
"record_whatsapp_status":
{ Args: { "error_code"?: number,"message_sid": string,"message_status": string,"outbound_message_id"?: string }; Returns: {
              "changed": boolean,"id": string,"status": string
            }[]
                           },
"send_whatsapp_message":
{ Args: { "body"?: string,"content_sid"?: string,"content_variables"?: Json,"idempotency_key": string,"user_id": string }; Returns: {
              "attempts": number,
"body": string | null,
"claimed_until": string | null,
"content_sid": string | null,
"content_variables": Json | null,
"delivered_at": string | null,
"error_code": number | null,
"error_message": string | null,
"failed_at": string | null,
"id": string,
"idempotency_key": string,
"message_sid": string | null,
"queued_at": string,
"read_at": string | null,
"sending_at": string | null,
"sent_at": string | null,
"status": string,
"to_address": string,
"undelivered_at": string | null,
"unknown_at": string | null,
"updated_at": string,
"user_id": string
            }
                          SetofOptions: {
        from: "*"
        to: "outbound_messages"
        isOneToOne: true
        isSetofReturn: false
      } },
"settle_outbound_message":
{ Args: { "attempt": number,"error_code"?: number,"error_message"?: string,"message_sid"?: string,"outbound_message_id": string,"outcome": string,"recheck_after_seconds"?: number }; Returns: {
              "attempts": number,
"body": string | null,
"claimed_until": string | null,
"content_sid": string | null,
"content_variables": Json | null,
"delivered_at": string | null,
"error_code": number | null,
"error_message": string | null,
"failed_at": string | null,
"id": string,
"idempotency_key": string,
"message_sid": string | null,
"queued_at": string,
"read_at": string | null,
"sending_at": string | null,
"sent_at": string | null,
"status": string,
"to_address": string,
"undelivered_at": string | null,
"unknown_at": string | null,
"updated_at": string,
"user_id": string
            }[]
                          SetofOptions: {
        from: "*"
        to: "outbound_messages"
        isOneToOne: false
        isSetofReturn: true
      } },
"whatsapp_messaging_state":
{ Args: { "user_id": string }; Returns: {
              "can_send_template": boolean,"can_send_text": boolean,"opted_out": boolean,"to_address": string,"window_closes_at": string,"window_open": boolean
            }[]
                           },
"whatsapp_opted_out":
{ Args: { "user_id": string }; Returns: boolean
                           },
"whatsapp_window_open":
{ Args: { "user_id": string }; Returns: boolean
                           }
          }
          Enums: {
            [_ in never]: never
          }
          CompositeTypes: {
            "whatsapp_link_code": {
                        "code": string | null,"expires_at": string | null,"whatsapp_url": string | null
                      },"whatsapp_sender": {
                        "id": string | null,"auth_id": string | null,"phone_number": string | null,"whatsapp_user_id": string | null,"email": string | null,"full_name": string | null,"created_at": string | null,"updated_at": string | null,"created": boolean | null
                      }
          }
        }
}

type DatabaseWithoutInternals = Omit<Database, '__InternalSupabase'>

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
  ? (DefaultSchema["Tables"] & DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
      Row: infer R
    }
    ? R
    : never
  : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Insert: infer I
    }
    ? I
    : never
  : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Update: infer U
    }
    ? U
    : never
  : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never = never
> = DefaultSchemaEnumNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
  ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
  : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never = never
> = PublicCompositeTypeNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
  ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
  : never

export const Constants = {
  "public": {
          Enums: {
            
          }
        }
} as const
