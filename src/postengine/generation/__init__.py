"""Image generation: the endpoint, the service, output sizes and providers."""
