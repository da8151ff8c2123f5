"""Social envs: TextArena games and judged open-ended scenarios, as PettingZoo parallel envs."""
