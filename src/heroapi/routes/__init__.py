"""One router per resource; `heroapi.main` includes them all. Shared dependencies: `deps`."""
