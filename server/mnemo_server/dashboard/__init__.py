"""The web dashboard, served by the HTTP side at /dashboard/ (app.py): sign in
with an API key, then look at and manage what that key may reach, through
the server's own RPCs called with that key (rpc.py). The page is the static
HTML, CSS and JavaScript in static/, shipped as package data."""
