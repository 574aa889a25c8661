"""What the checks judge: the model of the cluster and Helm release, and reading it."""
