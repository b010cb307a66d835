"""What backup and restore jobs share: riding out a lost link to the pool (`linkretry`), a
run's progress (`progress`) and staging volumes on the backup host (`staging`: temp volumes,
free device names, attachment). `backup/` and `restore/` import this room, never each other."""
