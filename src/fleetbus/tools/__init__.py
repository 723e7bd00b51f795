"""What an operator asks for, one module per area; each declares its ToolSpecs."""
