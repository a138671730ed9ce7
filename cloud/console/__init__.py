"""The billing console at /console: users with a password and a role, browser sessions, pages."""
