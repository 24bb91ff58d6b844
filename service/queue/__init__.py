"""Redis, the one shared state: connections, RQ's training queue and its jobs, each job's metric stream."""
