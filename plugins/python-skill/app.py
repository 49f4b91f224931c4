"""A skill processor written in Python (componentize-py): the same world as the Rust
`skill-frontmatter`, with a house rule of its own: every skill needs at least one tag."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.skills import Metadata, Processed
from wit_world.imports import host


class Skills(exports.Skills):
    def process(self, path: str, content: str) -> Processed:
        lines = content.replace("\r\n", "\n").split("\n")
        if not lines or lines[0].strip() != "---":
            raise Err("SKILL.md must start with a frontmatter block (`---`)")
        fields = {}
        for line in lines[1:]:
            if line.strip() == "---":
                break
            if ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip()] = value.strip().strip("\"'")
        else:
            raise Err("the frontmatter block is not closed (`---`)")
        name = fields.pop("name", "")
        if not name:
            raise Err("the frontmatter has no `name`")
        tags = [t.strip() for t in fields.pop("tags", "").strip("[]").split(",") if t.strip()]
        if not tags:
            raise Err("house rule: every skill needs at least one tag")
        host.log(host.LogLevel.INFO, f"processed {path} in Python")
        metadata = Metadata(
            name=name,
            description=fields.pop("description", ""),
            tags=tags,
            version=fields.pop("version", None),
            extra=sorted(fields.items()),
        )
        return Processed(metadata=metadata, content=content, warnings=["checked by python-skill"])
