"""The HTTP layer. One module per resource (`heroes`, `users`, `items`, `login`, `health`), each
a `ROUTES` list that `routing.add_routes` registers (`heroapi.main` adds them all); who may call
what: `policy`; shared dependencies: `deps`; the fast path: `direct`; the throttle's answers:
`throttling`; lists: `lists` and `list_headers`."""
