"""One builder per tab: build_<name>_tab(services, demo, tab), registered in app.ui.TABS."""
