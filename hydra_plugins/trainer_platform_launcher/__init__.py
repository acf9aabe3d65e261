"""trainer_platform's Hydra launcher: a sweep's runs become one batch for the platform's own launchers."""
