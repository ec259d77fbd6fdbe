"""`dlrun transfer`: the layer mapping and freeze policy (planned without TensorFlow), the
mapping table, and the stages that train."""
