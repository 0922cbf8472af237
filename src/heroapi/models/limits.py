"""How large each stored or accepted value may be: the columns' sizes and the requests' limits."""

from typing import Final

# What the columns hold: ids are 64-bit everywhere, `age` a 32-bit INTEGER.
ID_MAX: Final = 2**63 - 1
AGE_MAX: Final = 2**31 - 1
NAME_MAX_LENGTH: Final = 255
EMAIL_MAX_LENGTH: Final = 254  # RFC 5321's limit on a forward path
HASH_MAX_LENGTH: Final = 255
DESCRIPTION_MAX_LENGTH: Final = 2000
PASSWORD_MAX_LENGTH: Final = 128
REFRESH_TOKEN_MAX_LENGTH: Final = 128
SESSION_ID_LENGTH: Final = 32
SECURITY_STAMP_LENGTH: Final = 32
