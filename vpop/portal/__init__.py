"""The web portal: a Flask application factory and one blueprint per area; templates
and static files in web/ (docs/portal.md)."""
