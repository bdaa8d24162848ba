"""Platform adapters. Each translates at the edge; the core never imports one."""
