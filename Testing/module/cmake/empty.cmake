# Intentionally empty: stands in for Slicer_USE_FILE, the extension config and CPack includes.
