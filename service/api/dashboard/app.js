// The dashboard: wires the form, the lists, the live job view, the drawing pad and the gallery together.

import { api } from './api.js';
import { Gallery } from './gallery.js';
import { JobView } from './job-view.js';
import { JobsList } from './jobs-list.js';
import { ModelsList } from './models-list.js';
import { DrawingPad } from './pad.js';
import { showMessage, showPrediction } from './prediction.js';
import { TrainForm } from './train-form.js';
import { debounce } from './ui.js';

const PREDICT_PAUSE_MS = 150; // predict when the pen pauses, not at every pointer move

const $ = (selector) => document.querySelector(selector);

const gallery = new Gallery($('#gallery'), $('.gallery-summary'));
const predictionPanel = $('#prediction');

// Each request for the pad is numbered: an answer about an older drawing (or one since cleared) that arrives late
// is not shown over a newer one.
let padRequests = 0;

async function predictDrawing() {
  if (pad.isEmpty) return;
  const request = ++padRequests;
  try {
    // With the 28x28 image the model saw, shown beside its answer.
    const body = { image: pad.toDataURL() };
    const { predictions } = await api('predict?return_image=true', { method: 'POST', body });
    if (request === padRequests) showPrediction(predictionPanel, predictions[0]);
  } catch (error) {
    if (request === padRequests) showMessage(predictionPanel, error.message, 'error'); // e.g. 409: no default model
  }
}

const pad = new DrawingPad($('#pad'), { onDraw: debounce(predictDrawing, PREDICT_PAUSE_MS) });

// When the default model may have changed, what it says about the drawing and the gallery may too.
function modelChanged() {
  predictDrawing();
  gallery.classify();
}

const models = new ModelsList($('#models'), { onDefaultChange: modelChanged });

const jobView = new JobView($('#job-view'), {
  onEnd: () => {
    jobs.refresh();
    models.refresh().then(modelChanged);
  },
  onChange: (job) => jobs.showLive(job),
});

function open(job) {
  jobs.select(job.id);
  jobView.show(job);
}

const jobs = new JobsList($('#jobs'), { onSelect: open });

const form = new TrainForm($('#train-form'), {
  onStarted: (job) => {
    open(job);
    jobs.refresh();
  },
});

$('#pad-clear').addEventListener('click', () => {
  pad.clear();
  padRequests += 1;
  showMessage(predictionPanel, 'Draw a digit from 0 to 9 in the black square.');
});
$('#gallery-next').addEventListener('click', () => gallery.loadOther());

form.load().catch((error) => form.showErrors([{ loc: [], msg: error.message }]));
models.refresh();
gallery.load();
jobs.refresh().then((list) => { if (list.length) open(list[0]); }); // the newest job, live if it still runs
