"""Checks that declarations which cannot be derived from each other still agree: a table and
the schemas of its rows, a PATCH body and the body that creates. `schemas` runs them at import."""

from collections.abc import Collection
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from annotated_types import MaxLen
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from sqlalchemy import Table


def _types(annotation: Any) -> tuple[Any, ...]:
    """The types a field's annotation allows (`int | None`: int and NoneType)."""
    if get_origin(annotation) in (Union, UnionType):
        return get_args(annotation)
    return (annotation,)


def _takes_null(field: FieldInfo) -> bool:
    return any(kind in (NoneType, Any) for kind in _types(field.annotation))


def _python_types(field: FieldInfo) -> set[Any]:
    """The Python types of a field's values other than None (`Age | None`: int)."""
    return {
        get_args(kind)[0] if get_origin(kind) is Annotated else kind
        for kind in _types(field.annotation)
        if kind is not NoneType
    }


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def _max_length(field: FieldInfo) -> int | None:
    return next((item.max_length for item in field.metadata if isinstance(item, MaxLen)), None)


def check_columns(table: Table, *schemas: type[BaseModel], private: Collection[str] = ()) -> None:
    """Raise TypeError unless every field of `schemas` has its column in `table`, of the field's
    Python type, NULL where the field takes `null` and NOT NULL where it does not, as long as the
    field's `max_length`; and every column is some schema's field, or one of the `private`
    columns no schema shows."""
    problems = []
    fields: dict[str, FieldInfo] = {}
    for schema in schemas:
        for name, field in schema.model_fields.items():
            fields.setdefault(name, field)
            column = table.columns.get(name)
            if column is None:
                problems.append(f"{schema.__name__}.{name} has no column")
                continue
            if _python_types(field) != {column.type.python_type}:
                kinds = " | ".join(sorted(map(_type_name, _python_types(field))))
                problems.append(
                    f"{schema.__name__}.{name} is {kinds}, "
                    f"its column {_type_name(column.type.python_type)}"
                )
            if _takes_null(field) != column.nullable:
                takes = "takes" if _takes_null(field) else "refuses"
                null = "NULL" if column.nullable else "NOT NULL"
                problems.append(f"{schema.__name__}.{name} {takes} null, its column is {null}")
            length = getattr(column.type, "length", None)
            if length is not None and _max_length(field) != length:
                problems.append(
                    f"{schema.__name__}.{name} has max_length={_max_length(field)}, "
                    f"its column holds {length}"
                )
    problems.extend(
        f"column {column.name!r} is in no schema (add the field, or list it as private)"
        for column in table.columns
        if column.name not in fields and column.name not in private
    )
    if problems:
        raise TypeError(f"table {table.name!r} and its schemas disagree: " + "; ".join(problems))


def _validated_fields(schema: type[BaseModel]) -> set[str]:
    validators = schema.__pydantic_decorators__.field_validators.values()
    return {name for validator in validators for name in validator.info.fields}


def _null_taken(schema: type[BaseModel], name: str) -> bool:
    """Whether `schema` validates a body that sets its field `name` to `null`."""
    try:
        schema.model_validate({name: None})
    except ValidationError as error:
        return all(problem["loc"][:1] != (name,) for problem in error.errors())
    return True


def _optional_problems(
    update: type[BaseModel], name: str, created: FieldInfo, updated: FieldInfo
) -> list[str]:
    """What keeps `update`'s field `name` (`updated`) from being `created` made optional."""
    problems = []
    if updated.is_required() or updated.default is not None:
        problems.append(f"{name} must default to None (a PATCH may leave it out)")
    without_null = [
        tuple(kind for kind in _types(field.annotation) if kind is not NoneType)
        for field in (created, updated)
    ]
    if without_null[0] != without_null[1] or created.metadata != updated.metadata:
        problems.append(f"{name}: {updated} is not {created} made optional")
    takes_null = _null_taken(update, name)
    if takes_null != _takes_null(created):
        problems.append(f"{name}: null must be {'refused' if takes_null else 'taken'}")
    return problems


def check_update_schema(create: type[BaseModel], update: type[BaseModel]) -> None:
    """Raise TypeError unless `update` (a PATCH body) has `create`'s fields, each optional, of the
    same type and constraints, with the same fields checked by validators, and refusing `null`
    exactly where `create` does (a NOT NULL column may be left out of a PATCH, not set to null)."""
    problems = []
    missing = create.model_fields.keys() - update.model_fields.keys()
    extra = update.model_fields.keys() - create.model_fields.keys()
    if missing or extra:
        problems.append(f"fields missing: {sorted(missing)}, extra: {sorted(extra)}")
    for name, created in create.model_fields.items():
        updated = update.model_fields.get(name)
        if updated is not None:
            problems.extend(_optional_problems(update, name, created, updated))
    if _validated_fields(create) != _validated_fields(update):
        problems.append(
            f"fields with validators: {sorted(_validated_fields(create))} in "
            f"{create.__name__}, {sorted(_validated_fields(update))} in {update.__name__}"
        )
    if problems:
        raise TypeError(
            f"{update.__name__} does not match {create.__name__}: " + "; ".join(problems)
        )
