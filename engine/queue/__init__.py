"""The run queue: line runs up, leave, come back to finished LoRAs (DESIGN.md, Queue).

`store` holds the state file and its lock, `checks` the checks at add and at start, `workers`
which workers are alive and which devices they hold, `worker` the loop that drains the queue.
`python -m engine.queue work [--gpus 0,1]` runs a worker in the foreground. No torch in any of it.
"""
