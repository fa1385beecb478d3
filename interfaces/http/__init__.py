"""The HTTP interface: Litestar app factory, tenant guard and one controller per resource."""
