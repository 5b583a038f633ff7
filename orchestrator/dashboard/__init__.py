"""The hotline dashboard and the client portal: accounts, what needs attention, pages."""
