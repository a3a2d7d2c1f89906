"""Defect detection: VOC, COCO and YOLO boxes, RetinaNet, COCO mAP (plug-in: task.py)."""
