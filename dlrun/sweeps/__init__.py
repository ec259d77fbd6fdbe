"""`dlrun sweep`: the parameter space planned into trials, run by an executor, recorded and
ranked. Planning and reporting load no TensorFlow; only running a trial does."""
