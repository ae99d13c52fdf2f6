"""Parameter estimation: FitProblem, local fits, multiple shooting, multistart, FitResult, uncertainty."""
