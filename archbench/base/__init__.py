"""The base layer every other layer stands on: files (atomic writes, locks), the device and machine
identity, key=value arguments, durations as text, and the names of the numeric settings. Nothing here
imports another archbench module, and nothing here imports torch at module level."""
