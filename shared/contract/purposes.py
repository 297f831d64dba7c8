"""Lists the purposes of communication (policy clause 3.2) and the technical one (clause 4.3)."""

from enum import StrEnum


class Purpose(StrEnum):
    """Names the only purposes that may be granted and messaged for (clause 3.2)."""

    EVENT_REMINDER = "event_reminder"
    REGISTRATION_CONFIRMATION = "registration_confirmation"
    EDUCATIONAL_MATERIAL = "educational_material"
    INQUIRY_RESPONSE = "inquiry_response"
    CUSTOMER_SUPPORT = "customer_support"


# Not grantable: the one technical notification that confirms an opt-out.
OPT_OUT_CONFIRMATION = "opt_out_confirmation"


def permitted_purpose(value: str) -> Purpose | None:
    try:
        return Purpose(value)
    except ValueError:
        return None
