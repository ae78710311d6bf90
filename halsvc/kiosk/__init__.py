"""The demo kiosk page, served by halsvc.bridge (static files only)."""
