"""Jinja2 message templates, one folder per locale; a package only so that they install."""
