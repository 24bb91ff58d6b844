"""The training process: an RQ worker that runs ``worker.task.train_job``."""
