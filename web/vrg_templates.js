// The pack's templates in the template browser in the order their numbered names give. ComfyUI 0.3.64's
// /workflow_templates lists each pack's files in the file system's order (newer ComfyUI sorts them); the frontend
// shows them as listed. This sorts this pack's list, and no other, as it arrives.
import { api } from "../../scripts/api.js";

const PACK = decodeURIComponent(new URL(import.meta.url).pathname.split("/").at(-2));  // extensions/<pack>/this.js
const listed = api.getWorkflowTemplates.bind(api);

api.getWorkflowTemplates = async function () {
  const templates = await listed();
  if (Array.isArray(templates?.[PACK])) {
    templates[PACK].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  }
  return templates;
};
