// VRG+ (VRGSearchSchedule) and VRG Compare Schedules: a node added to the canvas starts with its seed fixed.
// The frontend gives every input named "seed" a "control after generate" widget that starts at "randomize";
// for these nodes the seed picks the noises of a search or a check, so a new seed on every Run would search
// again (minutes on a real model) and state another figure each time. A loaded workflow keeps its saved value
// (LiteGraph creates the node, then applies the saved widget values).
import { app } from "../../scripts/app.js";

const SEEDED = new Set(["VRGSearchSchedule", "VRGCompareSchedules"]);

app.registerExtension({
  name: "vrg.fixed_seed",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!SEEDED.has(nodeData.name)) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const made = onNodeCreated?.apply(this, arguments);
      const control = this.widgets?.find((w) => w.name === "control_after_generate");
      if (control) control.value = "fixed";
      return made;
    };
  },
});
