"""The parts of the `extend_batch` flow (`flows/extend_batch.py`), one concern per module.

- `outcomes`: what one item came to (`ItemOutcome`), the batch's counts (`BatchSummary`), and the
  checks that reject an item before anything is run or paid.
- `dispatch`: how one item runs (subflow, inline task, deployment run) and how many at once.
- `inbox`: an S3 inbox's scan for new videos and its marks once they are done.
- `report`: the batch's report and table artifacts and its `rh-extend.batch.finished` event.
"""
