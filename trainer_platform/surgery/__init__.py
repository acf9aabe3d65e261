"""Model surgery: merges, LoRA merge, checkpoint averaging, vocabulary and layer edits, GGUF import; streamed
safetensors in, sharded safetensors + lineage.json out. `run_surgery` runs a `SurgerySpec`."""
