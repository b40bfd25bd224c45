"""Every setting is documented with its environment variable in README and .env.example."""

from pathlib import Path

from pydantic import BaseModel

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def env_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Environment variable names of every leaf setting, nested groups joined by `__`."""
    names: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(env_names(annotation, f"{prefix}{name.upper()}__"))
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_setting_names_cover_nested_groups() -> None:
    names = env_names(Settings)
    assert "ENVIRONMENT" in names
    assert "DATABASE__URL" in names
    assert "SECURITY__JWT_SECRET" in names


def test_every_setting_is_in_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    missing = [n for n in env_names(Settings) if f"{n}=" not in example]
    assert missing == []


def test_every_setting_is_in_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in env_names(Settings) if f"`{n}`" not in readme]
    assert missing == []
