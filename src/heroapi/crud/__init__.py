"""Every read and write of the database, one module per resource. No HTTP here: routes, the CLI
and tests call these.

Statements are built once, at import, as SQLAlchemy Core; `Database` compiles each once per
dialect. Functions take keyword arguments and return plain rows: dicts, or, on the paths a request
renders straight to JSON (`rendering.py`), values in a documented order.
"""

from heroapi.crud.heroes import (
    HERO_LAST_MODIFIED,
    HEROES,
    create_hero,
    delete_hero,
    get_hero,
    update_hero,
)
from heroapi.crud.items import (
    ITEM_LAST_MODIFIED,
    ITEM_VALUES,
    ITEMS,
    create_item,
    delete_item,
    get_item,
    update_item,
)
from heroapi.crud.schema import schema_revision
from heroapi.crud.users import (
    USER_LAST_MODIFIED,
    USER_VALUES,
    USERS,
    EmailAlreadyRegistered,
    create_user,
    delete_user,
    email_registered,
    get_login,
    get_user,
    get_user_with_items,
    replace_password_hash,
    update_user,
)

__all__ = [
    "HEROES",
    "HERO_LAST_MODIFIED",
    "ITEMS",
    "ITEM_LAST_MODIFIED",
    "ITEM_VALUES",
    "USERS",
    "USER_LAST_MODIFIED",
    "USER_VALUES",
    "EmailAlreadyRegistered",
    "create_hero",
    "create_item",
    "create_user",
    "delete_hero",
    "delete_item",
    "delete_user",
    "email_registered",
    "get_hero",
    "get_item",
    "get_login",
    "get_user",
    "get_user_with_items",
    "replace_password_hash",
    "schema_revision",
    "update_hero",
    "update_item",
    "update_user",
]
