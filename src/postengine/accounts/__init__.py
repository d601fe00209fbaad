"""Connected social accounts (API.md §6) and the connectors that publish to them."""
